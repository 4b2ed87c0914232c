import Foundation
internal import Libvirt
import Logging
import Synchronization

/// How many moves an evacuation runs at once: in all, and into any one target. The defaults are
/// the peers' (oVirt's two incoming and two outgoing per host, Proxmox's `--maxworkers`).
public struct EvacuationLimit: Sendable, Equatable, Codable {
    /// Moves in flight at once, in all.
    public var maxParallel: Int
    /// Moves in flight at once into one target.
    public var perTarget: Int

    public init(maxParallel: Int = 2, perTarget: Int = 2) {
        self.maxParallel = maxParallel
        self.perTarget = perTarget
    }
}

/// What an evacuation did, VM by VM.
public struct EvacuationResult: Sendable, Codable, Equatable {
    public struct Move: Sendable, Codable, Equatable {
        public var vm: String
        /// Where it went, or was to go (nil when it never got a target).
        public var target: String?
        public var type: MigrationOptions.MigrationType?
        /// When its move was asked for (its preflight included) and when it ended.
        public var started: Date?
        public var ended: Date?
        public var seconds: Double?
        public var downtimeMilliseconds: UInt64?
        public var bytesTransferred: UInt64?
        /// 0 when it moved; else why not (the preflight's code, the move's, or 2 if cancelled).
        public var code: ReturnCode
        public var message: String?
    }

    /// Every VM, in the order the moves started.
    public var moves: [Move]
    /// 0 when every VM moved, else the highest code among those that did not.
    public var code: ReturnCode
    /// The most moves that were in flight at once.
    public var mostAtOnce: Int
    /// The evacuation was cancelled: the moves in flight were cancelled, no more were started.
    public var cancelled: Bool
}

extension Host {
    /// Moves VMs off this host (Nova's host-evacuate-live, Proxmox's migrateall): all its
    /// running VMs, or those named, to `targets`, at most `limit.maxParallel` at once and
    /// `limit.perTarget` into any one target. Each VM goes to the target with the most free
    /// memory left after the moves already sent there. A VM whose preflight refuses it is
    /// reported with its code and the others go on.
    ///
    /// The job's progress covers all moves; its result lists each VM's move and ends with code
    /// 0 only if all moved. Cancelling it cancels the moves in flight (each rolls back as
    /// `migrate` does), starts no more, and the result says which VMs moved.
    /// - Throws: before anything moves: code 4 for no target, a target in no destination format,
    ///   a limit below 1, or a VM name this host does not know.
    public func evacuate(
        to targets: [String], options: MigrationOptions = MigrationOptions(), limit: EvacuationLimit = EvacuationLimit(),
        vms names: [String]? = nil
    ) async throws(VMDriverError) -> Job<EvacuationResult> {
        guard !targets.isEmpty else { throw VMDriverError(.invalidParameter, "an evacuation of \(label) needs a target host") }
        guard limit.maxParallel >= 1, limit.perTarget >= 1 else {
            throw VMDriverError(
                .invalidParameter,
                "an evacuation needs at least one move at a time (max parallel \(limit.maxParallel), per target \(limit.perTarget))"
            )
        }
        for target in targets { _ = try MigrationDestination(parsing: target) }
        let machines: [VirtualMachine]
        if let names {
            var opened: [VirtualMachine] = []
            for name in names { opened.append(try await open(name)) }
            machines = opened
        } else {
            machines = try await list()
        }
        var memory: [UInt64] = []
        for vm in machines { memory.append((try? await vm.details().memoryMiB) ?? 0) }
        let free = await Self.freeMemory(of: targets, options: options, logger: logger)
        let plan = EvacuationPlan(vms: Array(zip(machines, memory)), targets: targets, free: free, limit: limit, options: options)
        return Job(kind: .migrate, subject: "evacuation of \(label) to \(targets.joined(separator: ", "))") { context in
            await plan.run(context: context)
        }
    }

    /// Each target's free memory in MiB, asked of its libvirt; nil where it cannot be asked (the
    /// move itself then says why).
    private static func freeMemory(of targets: [String], options: MigrationOptions, logger: Logger) async -> [UInt64?] {
        var free: [UInt64?] = []
        for target in targets {
            guard let destination = try? MigrationDestination(parsing: target) else {
                free.append(nil)
                continue
            }
            let uri = MigrationPlan.clientURI(
                peerURI: MigrationPlan.peerURI(destination: destination, security: options.security),
                pkiPath: options.clientPKIPath)
            guard let host = try? await Host.connect(uri, logger: logger) else {
                free.append(nil)
                continue
            }
            free.append(try? await host.blocking("") { connection in try connection.freeMemory() / (1 << 20) })
            try? await host.close()
        }
        return free
    }
}

/// The queue of an evacuation and its bookkeeping.
struct EvacuationPlan: Sendable {
    let vms: [(vm: VirtualMachine, memoryMiB: UInt64)]
    let targets: [String]
    let free: [UInt64?]
    let limit: EvacuationLimit
    let options: MigrationOptions

    init(
        vms: [(VirtualMachine, UInt64)], targets: [String], free: [UInt64?], limit: EvacuationLimit, options: MigrationOptions
    ) {
        // The biggest first: they take longest, and the spread by memory works best that way.
        self.vms = vms.map { (vm: $0.0, memoryMiB: $0.1) }.sorted { $0.memoryMiB > $1.memoryMiB }
        self.targets = targets
        self.free = free
        self.limit = limit
        self.options = options
    }

    /// The target for a VM of `memory` MiB: of those with room for one more move, the one with
    /// the most free memory after what was sent there (unknown free memory counts as none, so
    /// it is chosen last); nil when none has room.
    static func pick(
        memory: UInt64, targets: Int, free: [UInt64?], sent: [UInt64], inFlight: [Int], perTarget: Int
    ) -> Int? {
        (0..<targets).filter { inFlight[$0] < perTarget }.max { a, b in
            let left = { (index: Int) -> Int64 in Int64(free[index] ?? 0) - Int64(sent[index]) }
            return left(a) == left(b) ? a > b : left(a) < left(b)
        }
    }

    func run(context: JobContext) async -> EvacuationResult {
        let total = vms.count
        var moves: [EvacuationResult.Move] = []
        var pending = vms[...]
        var sent = [UInt64](repeating: 0, count: targets.count)
        var inFlight = [Int](repeating: 0, count: targets.count)
        var running = 0
        var most = 0
        let percents = Percents()
        func report(_ phase: String) {
            let done = percents.total
            context.report(JobProgress(phase: phase, percent: total == 0 ? 100 : done / Double(total)))
        }
        let options = self.options
        await withTaskGroup(of: (Int, EvacuationResult.Move).self) { group in
            while true {
                while running < limit.maxParallel, !Task.isCancelled, let next = pending.first,
                    let target = Self.pick(
                        memory: next.memoryMiB, targets: targets.count, free: free, sent: sent, inFlight: inFlight,
                        perTarget: limit.perTarget)
                {
                    pending.removeFirst()
                    running += 1
                    most = max(most, running)
                    inFlight[target] += 1
                    sent[target] += next.memoryMiB
                    let destination = targets[target]
                    report("moving \(next.vm.name) to \(destination)")
                    group.addTask {
                        (target, await Self.move(next.vm, to: destination, options: options, percents: percents))
                    }
                }
                guard let (target, move) = await group.next() else { break }
                running -= 1
                inFlight[target] -= 1
                moves.append(move)
                percents.set(move.vm, 100)
                report(move.code == .completed ? "\(move.vm) moved to \(move.target ?? "?")" : "\(move.vm) did not move")
            }
        }
        let cancelled = Task.isCancelled
        for left in pending {
            moves.append(
                EvacuationResult.Move(
                    vm: left.vm.name, code: .failed, message: "not started: the evacuation was cancelled"))
        }
        let code = moves.map(\.code).filter { $0 != .completed }.max { $0.rawValue < $1.rawValue } ?? .completed
        return EvacuationResult(moves: moves, code: code, mostAtOnce: most, cancelled: cancelled)
    }

    /// One VM's move: its preflight and migration, ended one way or another.
    static func move(
        _ vm: VirtualMachine, to destination: String, options: MigrationOptions, percents: Percents
    ) async -> EvacuationResult.Move {
        let started = Date()
        var move = EvacuationResult.Move(vm: vm.name, target: destination, started: started, code: .completed)
        do throws(VMDriverError) {
            let job = try await vm.migrate(to: destination, options: options)
            let watcher = Task {
                for await progress in job.progress {
                    if let percent = progress.percent { percents.set(vm.name, percent) }
                }
            }
            defer { watcher.cancel() }
            let result = try await job.nestedValue()
            move.type = result.type
            move.seconds = result.seconds
            move.downtimeMilliseconds = result.downtimeMilliseconds
            move.bytesTransferred = result.bytesTransferred
        } catch {
            move.code = error.code == .completed ? .failed : error.code
            move.message = error.message
        }
        move.ended = Date()
        if move.seconds == nil { move.seconds = move.ended!.timeIntervalSince(started) }
        return move
    }
}

/// Each move's percent done, for the evacuation's progress.
final class Percents: Sendable {
    private let values = Mutex<[String: Double]>([:])

    func set(_ vm: String, _ percent: Double) { values.withLock { $0[vm] = percent } }

    /// The sum over the moves (100 for each that ended).
    var total: Double { values.withLock { $0.values.reduce(0, +) } }
}
