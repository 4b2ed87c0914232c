import ArgumentParser
import Foundation
import VMDriver

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Migrate a VM to another host: hot (live), warm (paused while it moves) or cold (shut down, moved, restarted).",
        discussion: """
            DEST is a DNS name, an IPv4 or IPv6 address (optionally with :PORT, IPv6 as [ADDR]:PORT), or a \
            libvirt URI. Always peer-to-peer: the source's libvirtd connects to the target's. The target \
            keeps the VM's definition and the source drops it unless --keep-source. Several VMs go with \
            --to DEST (vmctl migrate web db --to hostb): at most --max-parallel at a time, one table of \
            results, exit 0 only if every VM moved, as vmctl evacuate.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(
        help: ArgumentHelp(
            "The VM (name or UUID) and where to (host name, address or libvirt URI); with --to, the VMs only.",
            valueName: "vm dest"))
    var arguments: [String] = []
    @Option(name: .customLong("to"), help: ArgumentHelp("Where to, for one VM or several.", valueName: "dest"))
    var to: String?
    @Option(help: ArgumentHelp("Moves at once, when several VMs go.", valueName: "n")) var maxParallel = 2

    @OptionGroup(title: "What kind of move") var kind: MigrationKindOptions
    @OptionGroup(title: "The VM on the target") var shape: TargetShapeOptions
    @OptionGroup(title: "Tuning the transfer") var tuning: TransferTuningOptions
    @Option(help: ArgumentHelp("pkipath for vmctl's own TLS connection to the target.", valueName: "dir")) var pkipath: String?
    @Flag(help: "Only check whether the VM could migrate; change nothing.") var check = false

    var options: MigrationOptions {
        MigrationOptions(kind: kind, shape: shape, tuning: tuning, pkipath: pkipath)
    }

    /// The VMs and the destination, from either form.
    var vms: [String] { to == nil ? Array(arguments.prefix(1)) : arguments }
    var destination: String { to ?? arguments.last ?? "" }

    func validate() throws {
        if to == nil {
            guard arguments.count == 2 else {
                throw ValidationError(
                    arguments.count < 2
                        ? "give the VM and where to (vmctl migrate VM DEST), or the VMs and --to DEST"
                        : "several VMs take their destination as --to DEST (vmctl migrate \(arguments.joined(separator: " ")) would read the last as the destination)"
                )
            }
        } else if arguments.isEmpty {
            throw ValidationError("give the VMs to move to \(to ?? "")")
        }
        if vms.count > 1 {
            if shape.name != nil { throw ValidationError("--name gives one VM a new name: move that VM on its own") }
            if check { throw ValidationError("--check looks at one VM: check each on its own") }
            if maxParallel < 1 { throw ValidationError("--max-parallel must be at least 1") }
        }
    }

    func run() async throws {
        if !check { Interrupts.shared.arm() }
        if vms.count > 1 { return try await moveSeveral() }
        let vm = vms[0]
        try await root.connection.withHost { host async throws(VMDriverError) in
            let machine = try await host.open(vm)
            if check {
                let answer = await machine.checkMigration(to: destination, options: options)
                if output.json {
                    print(Render.json(answer))
                } else {
                    print(
                        answer.migratable
                            ? "VM '\(machine.name)' can migrate to \(destination)."
                            : "VM '\(machine.name)' cannot migrate to \(destination):")
                    for problem in answer.problems { print("  [code \(problem.code.rawValue)] \(problem.message)") }
                    for decision in answer.decisions { print("  - \(decision)") }
                    if let forecast = answer.forecast { Self.render(forecast) }
                }
                if let first = answer.problems.first { throw VMDriverError(first.code, "not migratable: \(first.message)") }
                return
            }
            let job = try await machine.migrate(to: destination, options: options)
            let result = try await ProgressBar.follow(job)
            if output.json {
                print(Render.json(result))
            } else {
                print(
                    "Migrated VM '\(result.vm)' (\(result.type.rawValue), storage \(result.storage.rawValue), security \(result.security.rawValue)) "
                        + "from \(result.source) to \(result.destination) in \(String(format: "%.2f", result.seconds)) s; it is \(result.state) there."
                )
                print(
                    "Downtime: \(result.downtimeMilliseconds.map { "\($0) ms" } ?? "n/a"); moved: \(result.bytesTransferred.map(ProgressBar.size) ?? "n/a")."
                )
                for disk in result.disks {
                    print(
                        disk.mode == "shared"
                            ? "  \(disk.device): shared storage, \(disk.targetPath)"
                            : "  \(disk.device): \(disk.mode == "copy" ? "copied" : "top image copied") to \(disk.targetPath)")
                }
                for step in result.steps { print("  - \(step)") }
            }
        }
    }
}

extension Migrate {
    /// Several VMs to one destination, bounded as an evacuation is.
    func moveSeveral() async throws {
        let (options, destination, vms, limit) = (
            self.options, self.destination, self.vms, EvacuationLimit(maxParallel: maxParallel, perTarget: maxParallel)
        )
        try await root.connection.withHost { host async throws(VMDriverError) in
            try await Evacuate.follow(
                try await host.evacuate(to: [destination], options: options, limit: limit, vms: vms), json: output.json)
        }
    }
}

extension MigrationOptions {
    /// The options the command line gave (`migrate`, `evacuate`); vmctl's own pkipath defaults
    /// to VMDRIVER_PKIPATH.
    init(kind: MigrationKindOptions, shape: TargetShapeOptions? = nil, tuning: TransferTuningOptions, pkipath: String?) {
        self.init()
        kind.apply(to: &self)
        shape?.apply(to: &self)
        tuning.apply(to: &self)
        clientPKIPath = pkipath ?? ProcessInfo.processInfo.environment["VMDRIVER_PKIPATH"]
    }
}

/// `migrate`'s type, security, storage and policy.
struct MigrationKindOptions: ParsableArguments {
    @Option(help: "hot, warm, cold or auto (hot if running, warm for TCG guests on QEMU < 9.0, cold if shut off).") var type:
        MigrationOptions.MigrationType = .auto
    @Option(help: "low (plain TCP), normal (TLS control), high (TLS control and data).") var security: MigrationOptions.Security =
        .low
    @Option(help: "auto (verify sharing), shared, copy or incremental (a base the target lacks is copied first).") var storage:
        MigrationOptions.Storage = .auto
    @Option(help: "converge (step downtime, auto-converge, post-copy) or plain.") var policy: MigrationOptions.Policy = .converge
    @Flag(help: "Keep the VM defined on the source.") var keepSource = false
    @Flag(help: "Cold: destroy the VM if it does not shut down in time.") var force = false

    func apply(to options: inout MigrationOptions) {
        options.type = type
        options.security = security
        options.storage = storage
        options.policy = policy
        options.keepSource = keepSource
        options.force = force
    }
}

/// `migrate`'s changes to the VM on the target.
struct TargetShapeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("New name on the target.", valueName: "name")) var name: String?
    @Option(help: ArgumentHelp("Folder on the target for the VM's disks (made if missing; copies them there).", valueName: "dir"))
    var home: String?
    @Option(help: ArgumentHelp("New memory size on the target (MiB).", valueName: "MiB")) var memory: UInt64?
    @Option(help: ArgumentHelp("New vCPU count on the target.", valueName: "n")) var vcpus: UInt32?

    func apply(to options: inout MigrationOptions) {
        options.newName = name
        options.home = home
        options.memoryMiB = memory
        options.vcpus = vcpus
    }
}

/// `migrate`'s bandwidth, downtime, connections and convergence switches, and its timeout.
struct TransferTuningOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Bandwidth cap (MiB/s).", valueName: "MiB/s")) var bandwidth: UInt64?
    @Option(help: ArgumentHelp("Allowed downtime at the switch-over (ms).", valueName: "ms")) var maxDowntime: UInt64?
    @Option(help: ArgumentHelp("Parallel connections (multifd).", valueName: "n")) var parallel: Int?
    @Flag(help: "Compress re-sent pages (XBZRLE).") var compress = false
    @Flag(help: "Let QEMU throttle a guest that dirties memory too fast.") var autoConverge = false
    @Flag(help: "Allow post-copy.") var postcopy = false
    @Option(help: ArgumentHelp("Give up after this many seconds (default: scaled by memory).", valueName: "s")) var timeout:
        Double?

    func validate() throws {
        // At most a year: a bigger number would overflow the milliseconds (and crash vmctl).
        if let timeout, !(timeout > 0 && timeout <= 31_536_000) {
            throw ValidationError("--timeout must be a positive number of seconds, at most 31536000 (a year)")
        }
        if let parallel, parallel < 1 { throw ValidationError("--parallel must be at least 1") }
    }

    func apply(to options: inout MigrationOptions) {
        options.bandwidthMiBps = bandwidth
        options.maxDowntimeMilliseconds = maxDowntime
        options.parallelConnections = parallel
        options.compress = compress
        options.autoConverge = autoConverge
        options.postcopy = postcopy
        options.timeout = timeout.map { .milliseconds(Int64($0 * 1000)) }
    }
}

extension Migrate {
    static func render(_ forecast: MigrationForecast) {
        if let cpu = forecast.cpu {
            print(
                "CPU: \(cpu.verdict)"
                    + (cpu.missingFeatures.isEmpty ? "" : ", missing \(cpu.missingFeatures.joined(separator: ", "))")
                    + (cpu.verdict == "not compared" ? " (\(cpu.note ?? ""))" : ""))
        }
        if let rate = forecast.dirtyRate { print("Dirty rate: \(rate.mibPerSecond) MiB/s (sampled over \(rate.seconds) s)") }
        if let p = forecast.prediction {
            if p.converges {
                print(
                    "Prediction at \(p.bandwidthMiBps) MiB/s: plain pre-copy converges in \(p.passes ?? 0) passes, "
                        + String(format: "%.1f s", p.seconds ?? 0) + ", downtime about \(p.downtimeMilliseconds ?? 0) ms "
                        + "(at most: pages the guest never wrote go as zero-page flags, nearly free)")
            } else {
                print(
                    "Prediction at \(p.bandwidthMiBps) MiB/s: plain pre-copy does not converge (the guest dirties \(p.dirtyMiBps) MiB/s "
                        + "of \(p.memoryMiB) MiB); the policy will need \(p.policyStep)")
            }
        }
        if let tls = forecast.tls {
            print("TLS to \(tls.dialled):")
            for file in tls.files {
                let expiry = file.expires.map { ", valid until \(ISO8601DateFormatter().string(from: $0))" } ?? ""
                print("  \(file.role): \(file.path)\(expiry)\(file.problem.map { " (\($0))" } ?? "")")
            }
            if let subject = tls.serverSubject {
                let expiry = tls.serverExpires.map { ", valid until \(ISO8601DateFormatter().string(from: $0))" } ?? ""
                print("  the target presents \(subject)\(expiry)")
            }
            let names = tls.namesAddress.map { $0 ? "names the address dialled" : "does NOT name the address dialled" }
            print("  \(names.map { "its certificate \($0); " } ?? "")GnuTLS: \(tls.status)")
        }
        for note in forecast.notes { print("Note: \(note)") }
    }
}

extension MigrationOptions.MigrationType: ExpressibleByArgument {}
extension MigrationOptions.Security: ExpressibleByArgument {}
extension MigrationOptions.Storage: ExpressibleByArgument {}
extension MigrationOptions.Policy: ExpressibleByArgument {}
