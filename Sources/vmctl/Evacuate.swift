import ArgumentParser
import Foundation
import VMDriver

struct Evacuate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evacuate",
        abstract: "Move every running VM of the host (or those named) to other hosts, a few at a time.",
        discussion: """
            Each VM goes to the target with the most free memory left after the moves already sent there; \
            at most --max-parallel moves run at once, and --per-target into one target (2 and 2, as oVirt and \
            Proxmox choose). A VM whose preflight refuses it is reported and the others go on. One table of \
            results; the exit status is 0 only if every VM moved, else the highest code among those that did \
            not. Ctrl-C cancels every move in flight (each rolls back) and says which VMs moved.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The VMs to move (default: every running VM of the host).", valueName: "vm"))
    var vms: [String] = []
    @Option(
        name: .customLong("to"),
        help: ArgumentHelp(
            "A target host (host name, address or libvirt URI); give several to spread the VMs.", valueName: "dest"))
    var targets: [String] = []
    @Option(help: ArgumentHelp("Moves at once, in all.", valueName: "n")) var maxParallel = 2
    @Option(help: ArgumentHelp("Moves at once into one target.", valueName: "n")) var perTarget = 2

    @OptionGroup(title: "What kind of move") var kind: MigrationKindOptions
    @OptionGroup(title: "Tuning the transfer") var tuning: TransferTuningOptions
    @Option(help: ArgumentHelp("pkipath for vmctl's own TLS connection to the targets.", valueName: "dir")) var pkipath: String?

    func validate() throws {
        if targets.isEmpty { throw ValidationError("give at least one target with --to") }
        if maxParallel < 1 || perTarget < 1 { throw ValidationError("--max-parallel and --per-target must be at least 1") }
    }

    func run() async throws {
        Interrupts.shared.arm()
        let options = MigrationOptions(kind: kind, tuning: tuning, pkipath: pkipath)
        try await root.connection.withHost { host async throws(VMDriverError) in
            let job = try await host.evacuate(
                to: targets, options: options, limit: EvacuationLimit(maxParallel: maxParallel, perTarget: perTarget),
                vms: vms.isEmpty ? nil : vms)
            try await Self.follow(job, json: output.json)
        }
    }

    /// Follows the moves to their end, prints the table (or JSON), and throws unless all moved.
    static func follow(_ job: Job<EvacuationResult>, json: Bool) async throws(VMDriverError) {
        let result = try await ProgressBar.follow(job)
        if json {
            print(Render.json(result))
        } else {
            table(result, since: job.startTime)
        }
        try requireAllMoved(result)
    }

    /// Throws the highest code among the VMs that did not move, naming them.
    static func requireAllMoved(_ result: EvacuationResult) throws(VMDriverError) {
        guard result.code == .completed else {
            let left = result.moves.filter { $0.code != .completed }.map(\.vm)
            throw VMDriverError(
                result.code,
                "\(left.count) of \(result.moves.count) VMs did not move (\(left.joined(separator: ", ")))"
                    + (result.cancelled ? ": the moves were cancelled" : ""))
        }
    }

    static func table(_ result: EvacuationResult, since start: Date) {
        guard !result.moves.isEmpty else {
            print("Nothing to move: no VM is running on the host.")
            return
        }
        func seconds(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
        let rows =
            [["VM", "TARGET", "TYPE", "START", "END", "TIME", "DOWNTIME", "BYTES", "CODE"]]
            + result.moves.map { move in
                [
                    move.vm, move.target ?? "-", move.type?.rawValue ?? "-",
                    seconds(move.started?.timeIntervalSince(start)), seconds(move.ended?.timeIntervalSince(start)),
                    seconds(move.seconds), move.downtimeMilliseconds.map { "\($0) ms" } ?? "-",
                    move.bytesTransferred.map(ProgressBar.size) ?? "-", "\(move.code.rawValue)",
                ]
            }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        for move in result.moves where move.code != .completed {
            print("  \(move.vm): \(move.message ?? "did not move")")
        }
        let moved = result.moves.filter { $0.code == .completed }.count
        print(
            "\(moved) of \(result.moves.count) moved; at most \(result.mostAtOnce) at once (START and END: seconds from the start)."
        )
    }
}
