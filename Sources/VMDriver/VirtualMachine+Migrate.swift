import Foundation
import Libvirt
import Synchronization

/// The answer of a migration preflight (CIM CheckVirtualSystemIsMigratableToHost).
public struct MigrationCheck: Sendable, Codable, Equatable {
    public struct Problem: Sendable, Codable, Equatable {
        public var code: ReturnCode
        public var message: String
    }
    public var migratable: Bool { problems.isEmpty }
    /// Every reason the migration would be refused, with the code it would give.
    public var problems: [Problem]
    /// What VMDriver would do: type, storage mode, security, flags.
    public var decisions: [String]
}

extension VirtualMachine {
    /// Migrates the VM to another host (PrlVm_MigrateEx, CIM MigrateVirtualSystemToHost) and
    /// returns a job whose result says how long it took, the downtime and the bytes moved.
    /// Always peer-to-peer; the target keeps the definition and the source drops it unless
    /// `keepSource`.
    /// - Throws: before anything moves: code 4 for a destination in no supported format, the
    ///   VM's own host, or a name already used there; code 1 for what the hosts cannot do (with
    ///   what is missing); code 5 for a VM in the wrong state; code 6 for storage whose sharing
    ///   cannot be verified. The job ends with code 3 at its timeout (the VM keeps running on
    ///   the source) and says where the VM is whatever happens.
    public func migrate(
        to destination: String, options: MigrationOptions = MigrationOptions()
    ) async throws(VMDriverError) -> Job<MigrationResult> {
        let (plan, problems) = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: false)
        guard let plan else {
            throw problems.first.map { VMDriverError($0.code, $0.message) } ?? VMDriverError(.failed, "no plan")
        }
        let domain = self.domain
        return Job(
            kind: .migrate, subject: "migration of \(label) to \(plan.destination)",
            describe: { await plan.whereIsTheVM() },
            onCancel: { try? domain.abortJob() }
        ) { context throws(VMDriverError) in
            try await plan.execute(context: context)
        }
    }

    /// Checks whether the VM could migrate, changing nothing, and lists every reason it could not.
    public func checkMigration(to destination: String, options: MigrationOptions = MigrationOptions()) async -> MigrationCheck {
        let (plan, problems) = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: true)
        try? await plan?.destinationHost.close()
        return MigrationCheck(problems: problems, decisions: plan?.decisions ?? [])
    }
}

/// A migration, checked and decided.
struct MigrationPlan: Sendable {
    let vm: VirtualMachine
    let destination: MigrationDestination
    let options: MigrationOptions
    let type: MigrationOptions.MigrationType
    let storage: MigrationOptions.Storage
    /// The URI the source's libvirtd connects to (peer-to-peer).
    let peerURI: String
    let destinationHost: Host
    let flags: Domain.MigrateFlags
    let parameters: Domain.MigrationParameters
    let wasActive: Bool
    let timeout: Duration
    let targetName: String
    let decisions: [String]

    typealias Problem = MigrationCheck.Problem

    static func make(
        vm: VirtualMachine, destination text: String, options: MigrationOptions, collectAll: Bool
    ) async -> (MigrationPlan?, [Problem]) {
        var problems: [Problem] = []
        func fail(_ code: ReturnCode, _ message: String) { problems.append(Problem(code: code, message: message)) }
        let label = vm.label
        let source = vm.host

        // The destination string.
        let destination: MigrationDestination
        do {
            destination = try MigrationDestination(parsing: text)
        } catch {
            return (nil, [Problem(code: error.code, message: error.message)])
        }
        // What the source host can do.
        let caps: Capabilities
        do {
            caps = try await CapabilityProbe(host: source, probeAccelerators: false).run()
        } catch {
            return (nil, [Problem(code: error.code, message: error.message)])
        }
        if caps.migrationTypes.values.allSatisfy({ !$0.isAvailable }) {
            return (
                nil,
                [Problem(code: .notSupported, message: "the \(source.driver) driver of \(source.label) does not migrate VMs")]
            )
        }
        if options.storage == .incremental {
            fail(
                .notSupported,
                "incremental storage migration (copying only a linked clone's overlay) is not supported yet: use --storage copy or shared"
            )
        }
        if let level = caps.securityLevels[securityKey(options.security)], level.status == .unavailable {
            fail(
                .notSupported,
                "security '\(options.security.rawValue)' is not available on \(source.label): \(level.reason ?? "")")
        }
        for (wanted, feature, name) in [
            (options.postcopy, Capabilities.Feature.postcopy, "postcopy"),
            (options.autoConverge, .autoConverge, "auto-converge"),
            (options.compress, .compression, "compression"),
            ((options.parallelConnections ?? 0) > 1, .multifd, "parallel migration (multifd)"),
        ] where wanted {
            if let support = caps.features[feature], support.status == .unavailable {
                fail(.notSupported, "\(name) is not available on \(source.label): \(support.reason ?? "")")
            }
        }
        if let name = options.newName {
            do { try CloneDefinition.validate(name: name) } catch { fail(error.code, error.message) }
        }
        if options.memoryMiB != nil || options.vcpus != nil {
            fail(
                .notSupported, "new memory or vCPU settings on the target are not supported yet: change them after the migration")
        }

        // The URIs: the source's libvirtd connects to `peerURI`; VMDriver checks the target
        // through its own connection (with the client's pkipath for TLS).
        let transport = options.security == .low ? "tcp" : "tls"
        let peerURI: String
        if let given = destination.uri {
            let scheme = given.prefix { $0 != ":" }
            if options.security != .low && !(scheme.hasSuffix("+tls") || scheme.hasSuffix("+ssh")) {
                fail(
                    .incompatibleParameters,
                    "security '\(options.security.rawValue)' needs an encrypted control connection, and \(given) is not qemu+tls:// or qemu+ssh://"
                )
            }
            peerURI = given
        } else {
            peerURI = "qemu+\(transport)://\(destination.hostForURI)\(destination.port.map { ":\($0)" } ?? "")/system"
        }
        var clientURI = peerURI
        if let pki = options.clientPKIPath, peerURI.contains("+tls://") {
            clientURI += (peerURI.contains("?") ? "&" : "?") + "pkipath=\(pki)"
        }
        let target: Host
        do {
            target = try await Host.connect(clientURI, logger: source.logger)
        } catch {
            let tls = peerURI.contains("+tls://")
            problems.append(
                Problem(
                    code: tls ? .notSupported : .failed,
                    message: tls
                        ? "cannot make a TLS connection to \(destination): \(error.message) (security '\(options.security.rawValue)' needs certificates on both hosts)"
                        : "cannot reach the libvirt of \(destination): \(error.message)"))
            return (nil, problems)
        }

        // Facts from both hosts.
        struct Facts: Sendable {
            var state: VMState
            var sameHost: Bool
            var nameTaken: Bool
            var layout: DiskLayout?
            var layoutError: VMDriverError?
            var memoryKiB: UInt64
            var shared: [String: Bool]
            var targetPools: [String: Bool]
        }
        let targetName = options.newName ?? vm.name
        let facts: Facts
        do throws(VMDriverError) {
            facts = try await source.blocking("cannot check the migration of \(label)") { [domain = vm.domain] connection in
                let state = try VirtualMachine.state(of: domain)
                let sourceUUID = hostUUID(try connection.capabilitiesXML())
                let targetConnection = target.connection
                let targetUUID = hostUUID(try targetConnection.capabilitiesXML())
                let taken = (try? targetConnection.lookupDomain(name: targetName)) != nil
                var layout: DiskLayout?
                var layoutError: VMDriverError?
                do {
                    layout = try DiskLayout.read(domain: domain, host: source, label: label)
                } catch let error as VMDriverError {
                    layoutError = error
                }
                var shared: [String: Bool] = [:]
                var targetPools: [String: Bool] = [:]
                for directory in Set((layout?.disks ?? []).map { ($0.path as NSString).deletingLastPathComponent }) {
                    // The probe file is only needed when VMDriver decides the storage mode itself.
                    if options.storage == .auto {
                        shared[directory] = StoragePools.sameStorage(directory, source: connection, target: targetConnection)
                    }
                    targetPools[directory] = (try? StoragePools.covering(directory, connection: targetConnection)) != nil
                }
                return Facts(
                    state: state, sameHost: sourceUUID != nil && sourceUUID == targetUUID, nameTaken: taken, layout: layout,
                    layoutError: layoutError, memoryKiB: try domain.info().maxMemoryKiB, shared: shared, targetPools: targetPools)
            }
        } catch {
            fail(error.code, error.message)
            try? await target.close()
            return (nil, problems)
        }
        if facts.sameHost {
            fail(.invalidParameter, "\(destination) is \(source.label) itself, where \(label) already is: give another host")
        }
        if facts.nameTaken {
            fail(
                .invalidParameter,
                "a VM named '\(targetName)' already exists on \(target.label): pass a new name (--name) or remove it")
        }
        // The type.
        var type = options.type
        if type == .auto { type = facts.state.isActive ? .hot : .cold }
        switch (type, facts.state) {
        case (_, .suspendedToDisk):
            fail(
                .invalidState,
                "\(label) is suspended to disk: its saved memory state cannot move; start it or discard the saved state first")
        case (.hot, let state) where !state.isActive, (.warm, let state) where !state.isActive:
            fail(.invalidState, "\(label) is \(state): a \(type.rawValue) migration needs it running; use --type cold (or auto)")
        default: break
        }
        if let level = caps.migrationTypes[Capabilities.MigrationType(rawValue: type.rawValue) ?? .hot], !level.isAvailable {
            fail(.notSupported, "\(type.rawValue) migration is not supported on \(source.label): \(level.reason ?? "")")
        }
        // Storage.
        var storage = options.storage
        var unshared: [DiskLayout.Disk] = []
        if let error = facts.layoutError {
            fail(error.code, error.message)
        } else if let layout = facts.layout {
            unshared = layout.disks.filter { facts.shared[($0.path as NSString).deletingLastPathComponent] != true }
            if storage == .auto {
                let unknown = layout.disks.filter { facts.shared[($0.path as NSString).deletingLastPathComponent] == nil }
                if !unknown.isEmpty {
                    fail(
                        .incompatibleParameters,
                        "cannot tell whether \(unknown.map(\.path).joined(separator: ", ")) is on storage \(target.label) shares: "
                            + "define a storage pool for its folder on both hosts, or pass --storage shared or --storage copy")
                }
                storage = unshared.isEmpty ? .shared : .copy
            }
            if storage == .copy {
                if type == .cold {
                    fail(
                        .notSupported,
                        "a cold migration moves only the definition: disks that are not shared need --type hot or warm to be copied"
                    )
                }
                let copied = options.storage == .copy ? layout.disks : unshared
                for disk in copied where facts.targetPools[(disk.path as NSString).deletingLastPathComponent] != true {
                    fail(
                        .incompatibleParameters,
                        "\(target.label) has no storage pool covering \((disk.path as NSString).deletingLastPathComponent), so libvirt cannot create the copy of \(disk.target) there: define one"
                    )
                }
                if options.storage == .copy { unshared = layout.disks }
            }
        }
        if !problems.isEmpty && !collectAll {
            try? await target.close()
            return (nil, problems)
        }

        // Flags and parameters.
        var flags: Domain.MigrateFlags = [.peerToPeer, .persistDestination]
        if !options.keepSource { flags.insert(.undefineSource) }
        switch type {
        case .hot: flags.insert(.live)
        case .cold: flags.insert(.offline)
        default: break
        }
        var parameters = Domain.MigrationParameters()
        if type != .cold { parameters.migrateURI = "tcp://\(destination.hostForURI)" }
        switch storage {
        case .shared:
            // libvirt calls local filesystems unsafe even when both hosts see them: sharing was
            // verified above (or asserted with --storage shared), so say so.
            flags.insert(.unsafe)
        case .copy:
            flags.insert(.nonSharedDisk)
            parameters.migrateDisks = unshared.map(\.target)
            if unshared.count != (facts.layout?.disks.count ?? 0) { flags.insert(.unsafe) }
        default: break
        }
        if options.security == .high {
            flags.insert(.tls)
            parameters.tlsDestination = destination.host
        }
        if let bandwidth = options.bandwidthMiBps { parameters.bandwidth = bandwidth }
        if options.compress {
            flags.insert(.compressed)
            parameters.compression = ["xbzrle"]
        }
        if let parallel = options.parallelConnections, parallel > 1 {
            flags.insert(.parallel)
            parameters.parallelConnections = Int32(parallel)
        }
        if options.autoConverge { flags.insert(.autoConverge) }
        if options.postcopy { flags.insert(.postcopy) }
        if options.policy == .converge && type == .hot {
            // Auto-converge acts only when pre-copy does not converge; post-copy is allowed and
            // switched to by the policy, where the host offers it.
            if caps.features[.autoConverge]?.status != .unavailable { flags.insert(.autoConverge) }
            if caps.features[.postcopy]?.status == .available { flags.insert(.postcopy) }
        }
        if let name = options.newName { parameters.destinationName = name }
        let memoryMiB = facts.memoryKiB / 1024
        let timeout =
            options.timeout
            ?? .seconds(60 + Int64(memoryMiB) / 8 + Int64(storage == .copy ? unshared.count * 120 : 0))
        let decisions = [
            "type \(type.rawValue)", "storage \(storage.rawValue)", "security \(options.security.rawValue)",
            "peer URI \(peerURI)", "flags \(describe(flags))", "timeout \(Job<Void>.format(timeout))",
        ]
        let plan = MigrationPlan(
            vm: vm, destination: destination, options: options, type: type, storage: storage, peerURI: peerURI,
            destinationHost: target, flags: flags, parameters: parameters, wasActive: facts.state.isActive, timeout: timeout,
            targetName: targetName, decisions: decisions)
        return (plan, problems)
    }

    static func securityKey(_ security: MigrationOptions.Security) -> Capabilities.SecurityLevel {
        switch security {
        case .low: .low
        case .normal: .normal
        case .high: .high
        }
    }

    static func describe(_ flags: Domain.MigrateFlags) -> String {
        let names: [(Domain.MigrateFlags, String)] = [
            (.live, "live"), (.peerToPeer, "p2p"), (.persistDestination, "persist-dest"), (.undefineSource, "undefine-source"),
            (.nonSharedDisk, "copy-storage-all"), (.nonSharedIncremental, "copy-storage-inc"), (.unsafe, "unsafe"),
            (.offline, "offline"), (.compressed, "compressed"), (.autoConverge, "auto-converge"), (.postcopy, "postcopy"),
            (.tls, "tls"), (.parallel, "parallel"),
        ]
        return names.filter { flags.contains($0.0) }.map(\.1).joined(separator: ",")
    }

    /// Where the VM is now, for messages: "the VM is running on host 'hosta'".
    func whereIsTheVM() async -> String {
        let sourceState = try? await vm.host.blocking("") { [domain = vm.domain] _ in try VirtualMachine.state(of: domain) }
        let targetState = try? await destinationHost.blocking("") { [targetName] connection in
            try VirtualMachine.state(of: try connection.lookupDomain(name: targetName))
        }
        var places: [String] = []
        if let sourceState { places.append("\(sourceState) on \(vm.host.label)") }
        if let targetState { places.append("\(targetState) on \(destinationHost.label)") }
        return places.isEmpty ? "the VM cannot be found on either host" : "the VM is " + places.joined(separator: " and defined ")
    }

    /// Runs the migration, watching it from this task while a pool thread blocks in libvirt.
    func execute(context: JobContext) async throws(VMDriverError) -> MigrationResult {
        let started = ContinuousClock.now
        let label = vm.label
        var steps: [String] = []
        defer { Task { try? await destinationHost.close() } }

        if type == .cold && wasActive {
            context.report(JobProgress(phase: "shutting the guest down", percent: 0))
            let job = try await vm.shutdown(timeout: options.shutdownTimeout, force: options.force)
            _ = try await job.wait()
            steps.append("shut the VM down")
        }
        if let downtime = options.maxDowntimeMilliseconds, type != .cold {
            try await vm.host.blocking("cannot set the downtime of \(label)") { [domain = vm.domain] _ in
                try domain.setMigrationMaxDowntime(milliseconds: downtime)
            }
        }
        let domain = vm.domain
        let (peerURI, parameters, flags) = (self.peerURI, self.parameters, self.flags)
        let finished = MigrationDone()
        let migration = Task<VMDriverError?, Never> {
            defer { finished.mark() }
            do throws(VMDriverError) {
                try await vm.host.blocking("migration of \(label) to \(destination)") { _ in
                    try domain.migrate(toURI: peerURI, parameters: parameters, flags: flags)
                }
                return nil
            } catch {
                return error
            }
        }
        // Watch: progress, policy, timeout, cancellation.
        var timedOut = false
        var cancelled = false
        var policy = ConvergencePolicy(enabled: options.policy == .converge && type == .hot, postcopy: flags.contains(.postcopy))
        let deadline = started + timeout
        while !finished.isDone {
            try? await Task.sleep(for: .milliseconds(250))
            if finished.isDone { break }
            if Task.isCancelled && !cancelled {
                cancelled = true
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            if ContinuousClock.now > deadline && !timedOut && !cancelled {
                timedOut = true
                steps.append("timeout after \(Job<Void>.format(timeout)): aborted")
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            guard let stats = try? await vm.host.blocking("", evenIfCancelled: true, { _ in try domain.jobStats() }),
                stats.type != .none
            else { continue }
            context.report(Self.progress(stats, type: type))
            if let action = policy.next(stats) {
                steps.append(action.description)
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in
                    switch action {
                    case .downtime(let milliseconds): try domain.setMigrationMaxDowntime(milliseconds: milliseconds)
                    case .postcopy: try domain.startPostCopy()
                    }
                }
            }
        }
        if let error = await migration.value {
            let now = await whereIsTheVM()
            if timedOut {
                throw VMDriverError(
                    .timeout,
                    "migration of \(label) to \(destination) did not finish within \(Job<Void>.format(timeout)) and was aborted; \(now)",
                    cause: error)
            }
            if cancelled {
                throw VMDriverError(.failed, "migration of \(label) to \(destination) was cancelled; \(now)", cause: error)
            }
            let code = error.code == .completed ? .failed : error.code
            throw VMDriverError(code, "\(error.message); \(now)", cause: error)
        }

        // Done: read what happened from the target, restart a cold-migrated VM.
        let targetName = self.targetName
        let restart = type == .cold && wasActive
        let (stats, state) = try await destinationHost.blocking("cannot read the migrated VM on \(destinationHost.label)") {
            connection in
            let moved = try connection.lookupDomain(name: targetName)
            let stats = try? moved.jobStats([.completed])
            if restart, try !moved.isActive() { try moved.start() }
            return (stats, try VirtualMachine.state(of: moved))
        }
        if restart { steps.append("started the VM on the target") }
        let elapsed = ContinuousClock.now - started
        return MigrationResult(
            vm: targetName, source: vm.host.name, destination: destinationHost.name, type: type, storage: storage,
            security: options.security,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            downtimeMilliseconds: stats?.downtime, bytesTransferred: stats?.dataProcessed ?? stats?.memoryProcessed, state: state,
            steps: steps)
    }

    static func progress(_ stats: Domain.JobStats, type: MigrationOptions.MigrationType) -> JobProgress {
        var progress = JobProgress(
            phase: stats.memoryIteration.map { "\(type.rawValue) migration: memory pass \($0)" } ?? "\(type.rawValue) migration",
            percent: stats.dataTotal.flatMap { total in
                total > 0 ? 100 * Double(total - min(total, stats.dataRemaining ?? 0)) / Double(total) : nil
            },
            bytesProcessed: stats.dataProcessed, bytesRemaining: stats.dataRemaining, bytesTotal: stats.dataTotal)
        progress.memoryRemaining = stats.memoryRemaining
        progress.diskRemaining = stats.diskRemaining
        progress.bytesPerSecond = stats.memoryBytesPerSecond
        progress.dirtyPagesPerSecond = stats.memoryDirtyRate
        progress.iteration = stats.memoryIteration
        progress.expectedDowntimeMilliseconds = stats.downtime
        return progress
    }
}

/// The steps VMDriver takes when a live migration does not converge: remaining data not falling
/// over several passes.
struct ConvergencePolicy {
    enum Action: CustomStringConvertible {
        case downtime(UInt64)
        case postcopy
        var description: String {
            switch self {
            case .downtime(let ms): "not converging: allowed downtime raised to \(ms) ms"
            case .postcopy: "still not converging: switched to post-copy"
            }
        }
    }

    let enabled: Bool
    let postcopy: Bool
    private var lastIteration: UInt64 = 0
    private var bestRemaining: UInt64 = .max
    private var stalledPasses = 0
    private var downtime: UInt64 = 300
    private var switched = false

    init(enabled: Bool, postcopy: Bool) {
        self.enabled = enabled
        self.postcopy = postcopy
    }

    /// Looks at the stats once a pass has ended; returns the next step, if one is due.
    mutating func next(_ stats: Domain.JobStats) -> Action? {
        guard enabled, !switched, let iteration = stats.memoryIteration, let remaining = stats.memoryRemaining,
            iteration > lastIteration
        else { return nil }
        lastIteration = iteration
        guard iteration >= 2 else { return nil }
        if remaining + remaining / 10 < bestRemaining {
            bestRemaining = min(bestRemaining, remaining)
            stalledPasses = 0
            return nil
        }
        stalledPasses += 1
        guard stalledPasses >= 2 else { return nil }
        stalledPasses = 0
        if downtime < 2000 {
            downtime = min(downtime * 2, 2000)
            return .downtime(downtime)
        }
        if postcopy {
            switched = true
            return .postcopy
        }
        return nil
    }
}

/// Set when the blocking migration call has returned.
final class MigrationDone: Sendable {
    private let done = Mutex(false)
    func mark() { done.withLock { $0 = true } }
    var isDone: Bool { done.withLock { $0 } }
}

/// The `<host><uuid>` of a capabilities document.
func hostUUID(_ capabilitiesXML: String) -> String? {
    (try? XMLTree.parse(capabilitiesXML))?.child("host")?.child("uuid")?.trimmedText
}
