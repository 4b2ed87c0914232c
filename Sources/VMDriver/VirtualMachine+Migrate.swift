import Foundation
internal import Libvirt
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
        // Another operation's record refuses at once (code 5 naming it and its process).
        try await OperationClaim.check(self)
        let (plan, problems) = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: false)
        guard let plan else {
            throw problems.first.map { VMDriverError($0.code, $0.message) } ?? VMDriverError(.failed, "no plan")
        }
        // The record, before anything is made on the target: the lock against a second process,
        // and what a later `vmctl abort` reads if this process dies.
        let claim: OperationClaim
        do throws(VMDriverError) {
            claim = try await OperationClaim.claim(
                self, operation: .migrate, target: plan.destinationHost.uri, targetName: plan.targetName)
        } catch {
            try? await plan.destinationHost.close()
            throw error
        }
        // Each image and pool made on the target is in the record before the job starts.
        plan.preparation.onChange { images, pools in
            await claim.update {
                $0.images = images
                $0.pools = pools
            }
        }
        // What the target needs first: the home folder, the images disks are copied into.
        do throws(VMDriverError) {
            if let home = plan.options.home { try await plan.preparation.makeHome(home) }
            if plan.type != .cold { try await plan.preparation.createImages(plan.moves) }
        } catch {
            await plan.preparation.rollback()
            await claim.release()
            try? await plan.destinationHost.close()
            throw error
        }
        let (domain, host) = (self.domain, self.host)
        return Job(
            kind: .migrate, subject: "migration of \(label) to \(plan.destination)",
            describe: { await plan.whereIsTheVM() },
            // At once, through the control lane; the monitor loop aborts too when it sees the
            // cancellation (whichever comes first: a second abort of an ended job does nothing).
            onCancel: { try? await host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() } }
        ) { context throws(VMDriverError) in
            try await plan.execute(context: context, claim: claim)
        }
    }

    /// Checks whether the VM could migrate, changing nothing, and lists every reason it could not.
    public func checkMigration(to destination: String, options: MigrationOptions = MigrationOptions()) async -> MigrationCheck {
        let made = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: true)
        let plan = made.0
        var problems = made.1
        try? await plan?.destinationHost.close()
        // Another operation in progress (or one whose process died) would refuse it too.
        do throws(VMDriverError) {
            try await OperationClaim.check(self)
        } catch {
            problems.insert(MigrationCheck.Problem(code: error.code, message: error.message), at: 0)
        }
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
    /// How each disk travels.
    let moves: [DiskMove]
    /// What VMDriver makes on the target, taken away if the migration fails.
    let preparation: TargetPreparation

    typealias Problem = MigrationCheck.Problem

    static func make(
        vm: VirtualMachine, destination text: String, options: MigrationOptions, collectAll: Bool
    ) async -> (MigrationPlan?, [Problem]) {
        var problems: [Problem] = []
        let options = {
            var options = options
            if let home = options.home, Self.badHome(home) == nil { options.home = (home as NSString).standardizingPath }
            return options
        }()
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
        // The options, before any host is asked: bad input is refused with nothing touched.
        problems += Self.validate(options: options, destination: destination)
        if !problems.isEmpty && !collectAll { return (nil, problems) }
        let peerURI = Self.peerURI(destination: destination, security: options.security)
        // What the source host can do.
        let caps: Capabilities
        do {
            caps = try await CapabilityProbe(host: source, probeAccelerators: false, pkiPath: options.clientPKIPath).run()
        } catch {
            return (nil, problems + [Problem(code: error.code, message: error.message)])
        }
        if caps.migrationTypes.values.allSatisfy({ !$0.isAvailable }) {
            return (
                nil,
                problems + [
                    Problem(code: .notSupported, message: "the \(source.driver) driver of \(source.label) does not migrate VMs")
                ]
            )
        }
        if let level = caps.securityLevels[securityKey(options.security)], level.status == .unavailable {
            fail(
                .notSupported,
                "security '\(options.security.rawValue)' is not available on \(source.label): \(level.reason ?? "")")
        }
        // Post-copy is the target's to give (its QEMU needs userfaultfd): tried, see execute.
        for (wanted, feature, name) in [
            (options.autoConverge, Capabilities.Feature.autoConverge, "auto-converge"),
            (options.compress, .compression, "compression"),
            ((options.parallelConnections ?? 0) > 1, .multifd, "parallel migration (multifd)"),
        ] where wanted {
            if let support = caps.features[feature], support.status == .unavailable {
                fail(.notSupported, "\(name) is not available on \(source.label): \(support.reason ?? "")")
            }
        }
        if !problems.isEmpty && !collectAll { return (nil, problems) }
        let clientURI = Self.clientURI(peerURI: peerURI, pkiPath: options.clientPKIPath)
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
            /// A job (another migration, say) is running on the VM.
            var busy: Bool
            var layout: DiskLayout?
            var layoutError: VMDriverError?
            var memoryKiB: UInt64
            /// The domain's `type`: "qemu" is TCG.
            var domainType: String?
            var shared: [String: Bool]
            /// Virtual size of each disk, by target device.
            var capacities: [String: UInt64]
            /// For each backing image of a disk that is not shared: whether the target has the
            /// same image at the same path (nil: it has none).
            var bases: [String: Result<Bool?, VMDriverError>]
            /// Images that would be created on the target and already exist there.
            var occupied: [String]
            /// The definitions to move: live (if running) and persistent, migratable.
            var liveXML: String?
            var inactiveXML: String?
        }
        let targetName = options.newName ?? vm.name
        let facts: Facts
        do throws(VMDriverError) {
            facts = try await source.blocking("cannot check the migration of \(label)") { [domain = vm.domain] connection in
                let state = try VirtualMachine.state(of: domain)
                let busy = ((try? domain.jobStats())?.type ?? .none) != .none
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
                let disks = layout?.disks ?? []
                // A folder no storage pool covers (on either host) gets a transient pool for
                // these checks, as virsh needs none to migrate such a VM; they go when the
                // checks end. On the target only a folder that exists is covered: one that
                // does not is not shared, and a copy makes it (TargetPreparation).
                let checking = TransientPools()
                defer { checking.destroyAll() }
                for directory in Set(disks.flatMap { [folder($0.path)] + $0.chain.map { folder($0.path) } }) {
                    checking.cover(directory, connection: connection)
                    checking.cover(directory, connection: targetConnection)
                }
                for directory in Set(disks.map { folder($0.path) }) {
                    // The probe file is only needed when VMDriver decides the storage mode itself.
                    if options.storage == .auto && options.home == nil {
                        shared[directory] = StoragePools.sameStorage(directory, source: connection, target: targetConnection)
                    }
                }
                var capacities: [String: UInt64] = [:]
                for disk in disks { capacities[disk.target] = try? domain.blockInfo(disk: disk.target).capacity }
                // Backing images, where only the top image might travel: the target must hold
                // the same bytes at the same path (the same file, when the folder is shared).
                var bases: [String: Result<Bool?, VMDriverError>] = [:]
                // One probe per folder, however many bases it holds (nil inside: cannot tell).
                var baseFolders: [String: Bool?] = shared.mapValues { $0 }
                if options.storage == .auto || options.storage == .incremental {
                    for disk in disks where shared[folder(disk.path)] != true || options.home != nil {
                        for base in disk.chain where bases[base.path] == nil {
                            let baseFolder = folder(base.path)
                            if baseFolders[baseFolder] == nil {
                                baseFolders[baseFolder] = .some(
                                    StoragePools.sameStorage(baseFolder, source: connection, target: targetConnection))
                            }
                            if baseFolders[baseFolder] == true {
                                bases[base.path] = .success(true)
                                continue
                            }
                            do {
                                bases[base.path] = .success(
                                    try MigrationStorage.sameImage(
                                        base.path, source: source.storage, target: targetConnection,
                                        hosts: sourceUUID.flatMap { from in targetUUID.map { (from, $0) } }))
                            } catch let error as VMDriverError {
                                bases[base.path] = .failure(error)
                            } catch {
                                bases[base.path] = .failure(VMDriverError(.failed, "cannot compare \(base.path): \(error)"))
                            }
                        }
                    }
                }
                var occupied: [String] = []
                for disk in disks where shared[folder(disk.path)] != true || options.home != nil {
                    let path = options.home.map { "\($0)/\(PathName.last(disk.path))" } ?? disk.path
                    if (try? ImageInspector.volume(at: path, connection: targetConnection)) != nil { occupied.append(path) }
                }
                return Facts(
                    state: state, sameHost: sourceUUID != nil && sourceUUID == targetUUID, nameTaken: taken, busy: busy,
                    layout: layout,
                    layoutError: layoutError, memoryKiB: try domain.info().maxMemoryKiB,
                    domainType: (try? XMLTree.parse(domain.xmlDescription()))?.attributes["type"], shared: shared,
                    capacities: capacities, bases: bases, occupied: occupied,
                    liveXML: state.isActive ? try domain.xmlDescription([.migratable, .secure]) : nil,
                    inactiveXML: try? domain.xmlDescription([.inactive, .migratable, .secure]))
            }
        } catch {
            fail(error.code, error.message)
            try? await target.close()
            return (nil, problems)
        }
        if facts.sameHost {
            fail(.invalidParameter, "\(destination) is \(source.label) itself, where \(label) already is: give another host")
        }
        if facts.busy {
            // A migration in flight holds the VM's name on the target too: say what is going on,
            // not that the name is taken.
            fail(
                .invalidState,
                "\(label) is busy with another job (a migration?) on \(source.label): wait for it to end or cancel it")
        } else if facts.nameTaken {
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
        // Post-copy of a TCG guest lost guest pages in VMDriver's page-pattern test (QEMU 7.2,
        // 3 of 3 runs with a bandwidth cap, the same with plain virsh): never for TCG guests.
        let tcg = facts.domainType == "qemu"
        if options.postcopy && tcg {
            fail(
                .notSupported,
                "post-copy is refused for \(label): it runs under TCG (domain type 'qemu'), where post-copy lost guest memory "
                    + "pages in VMDriver's page-pattern test; use the converge policy, which pauses the guest to finish instead")
        }
        // Storage: how each disk travels.
        var storage = options.storage
        var moves: [DiskMove] = []
        if let error = facts.layoutError {
            fail(error.code, error.message)
        } else if let layout = facts.layout {
            let decided = Self.decideStorage(
                layout: layout, shared: facts.shared, bases: facts.bases, capacities: facts.capacities, options: options,
                type: type, targetLabel: target.label)
            moves = decided.moves
            storage = decided.storage
            for problem in decided.problems { fail(problem.code, problem.message) }
            for path in facts.occupied where moves.contains(where: { $0.mode != .shared && $0.targetPath == path }) {
                fail(
                    .invalidParameter,
                    "\(path) already exists on \(target.label): VMDriver does not overwrite it; remove it or pick another --home")
            }
        }
        if !problems.isEmpty && !collectAll {
            try? await target.close()
            return (nil, problems)
        }

        // Flags and parameters.
        var (flags, parameters) = Self.translate(
            type: type, destination: destination, options: options, moves: moves, tcg: tcg,
            autoConverge: caps.features[.autoConverge]?.status != .unavailable)
        let travelling = moves.filter { $0.mode != .shared }
        if let name = options.newName { parameters.destinationName = name }
        // New paths (--home), flattened copies and new settings travel as destination XML.
        let newPaths = travelling.filter { $0.targetPath != $0.disk.path || ($0.mode == .copy && !$0.disk.chain.isEmpty) }
        let newSettings = options.memoryMiB != nil || options.vcpus != nil
        if type == .cold {
            // Offline, libvirt checks the destination XML against the source's ABI and defines
            // it as it is: new settings are defined on the target afterwards (execute).
            if !newPaths.isEmpty, let xml = facts.inactiveXML {
                parameters.destinationXML = Self.rewrite(xml, moves: newPaths, options: options, settings: false, rename: false)
            }
        } else {
            if !newPaths.isEmpty, let xml = facts.liveXML {
                parameters.destinationXML = Self.rewrite(
                    xml, moves: newPaths, options: options, settings: false, rename: false)
            }
            if !newPaths.isEmpty || newSettings, let xml = facts.inactiveXML {
                parameters.persistentXML = Self.rewrite(xml, moves: newPaths, options: options, settings: true, rename: true)
            }
        }
        let memoryMiB = facts.memoryKiB / 1024
        // Default: a minute, plus a second per 8 MiB of memory, plus half a minute and a minute
        // per GiB of each disk that is copied.
        var seconds = 60 + Int64(memoryMiB) / 8
        for move in travelling { seconds += 30 + Int64(move.capacity >> 30) * 60 }
        let timeout = options.timeout ?? .seconds(seconds)
        var decisions: [String] = [
            "type \(type.rawValue)", "storage \(storage.rawValue)", "security \(options.security.rawValue)",
            "peer URI \(peerURI)", "flags \(describe(flags))", "timeout \(Job<Void>.format(timeout))",
        ]
        for move in moves { decisions.append(Self.describe(move)) }
        if let home = options.home { decisions.append("home \(home) on \(target.label) (made if missing)") }
        let plan = MigrationPlan(
            vm: vm, destination: destination, options: options, type: type, storage: storage, peerURI: peerURI,
            destinationHost: target, flags: flags, parameters: parameters, wasActive: facts.state.isActive, timeout: timeout,
            targetName: targetName, decisions: decisions, moves: moves,
            preparation: TargetPreparation(target: target))
        return (plan, problems)
    }

    /// The libvirt flags and parameters of a migration, decided from the options and how each
    /// disk travels (pure, so the fuzz suite can check it): UNSAFE only where a disk stays on
    /// storage that was verified shared (or that the caller declared shared), TLS for the data
    /// exactly when security is high, the post-copy switch never for TCG guests.
    static func translate(
        type: MigrationOptions.MigrationType, destination: MigrationDestination, options: MigrationOptions, moves: [DiskMove],
        tcg: Bool, autoConverge: Bool
    ) -> (Domain.MigrateFlags, Domain.MigrationParameters) {
        var flags: Domain.MigrateFlags = [.peerToPeer, .persistDestination]
        if !options.keepSource { flags.insert(.undefineSource) }
        switch type {
        case .hot: flags.insert(.live)
        case .cold: flags.insert(.offline)
        default: break
        }
        var parameters = Domain.MigrationParameters()
        if type != .cold { parameters.migrateURI = "tcp://\(destination.hostForURI)" }
        let travelling = moves.filter { $0.mode != .shared }
        if moves.contains(where: { $0.mode == .shared }) {
            // libvirt calls local filesystems unsafe even when both hosts see them: sharing was
            // verified above (or asserted with --storage shared), so say so.
            flags.insert(.unsafe)
        }
        if type != .cold && !travelling.isEmpty {
            // Cold migrations copy image files before libvirt moves the definition (execute).
            flags.insert(travelling.contains { $0.mode == .incremental } ? .nonSharedIncremental : .nonSharedDisk)
            parameters.migrateDisks = travelling.map(\.disk.target)
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
            // Auto-converge acts only when pre-copy does not converge; post-copy is allowed for
            // the policy to switch to, if the target's QEMU can do it (see execute) and the
            // guest is not TCG (see above); otherwise the policy pauses the guest to finish.
            if autoConverge { flags.insert(.autoConverge) }
            if !tcg { flags.insert(.postcopy) }
        }
        return (flags, parameters)
    }

    /// Decides how each disk travels: in place when the storage is shared (checked), only its
    /// top image when the target holds an identical backing chain, else copied whole.
    static func decideStorage(
        layout: DiskLayout, shared: [String: Bool], bases: [String: Result<Bool?, VMDriverError>],
        capacities: [String: UInt64], options: MigrationOptions, type: MigrationOptions.MigrationType, targetLabel: String
    ) -> (moves: [DiskMove], storage: MigrationOptions.Storage, problems: [Problem]) {
        var problems: [Problem] = []
        func chainReady(_ disk: DiskLayout.Disk) -> VMDriverError? {
            for base in disk.chain {
                switch bases[base.path] {
                case .success(true)?: continue
                case .success(false)?:
                    return VMDriverError(
                        .incompatibleParameters,
                        "\(base.path), the base of \(disk.target), differs on \(targetLabel): copying only the overlay over it would corrupt the disk"
                    )
                case .success(nil)?:
                    return VMDriverError(
                        .incompatibleParameters, "\(targetLabel) has no \(base.path), the base of \(disk.target)")
                case .failure(let error)?: return error
                case nil: return VMDriverError(.incompatibleParameters, "\(base.path) was not compared with \(targetLabel)'s")
                }
            }
            return nil
        }
        var moves: [DiskMove] = []
        for disk in layout.disks {
            let inPlace: Bool? = options.home != nil ? false : shared[folder(disk.path)]
            let mode: DiskMove.Mode
            switch options.storage {
            case .shared: mode = .shared
            case .copy: mode = .copy
            case .incremental:
                mode = disk.chain.isEmpty ? .copy : .incremental
                if mode == .incremental, let error = chainReady(disk) {
                    problems.append(Problem(code: error.code, message: "--storage incremental: \(error.message)"))
                }
            case .auto:
                if inPlace == true {
                    mode = .shared
                } else if inPlace == nil {
                    problems.append(
                        Problem(
                            code: .incompatibleParameters,
                            message:
                                "cannot tell whether \(disk.path) is on storage \(targetLabel) shares: define a storage pool "
                                + "for its folder on both hosts, or pass --storage shared or --storage copy"))
                    mode = .shared
                } else {
                    mode = disk.chain.isEmpty || chainReady(disk) != nil ? .copy : .incremental
                }
            }
            let targetPath = options.home.map { "\($0)/\(PathName.last(disk.path))" } ?? disk.path
            if mode != .shared && capacities[disk.target] == nil {
                problems.append(Problem(code: .failed, message: "cannot read the size of \(disk.target) (\(disk.path))"))
            }
            moves.append(DiskMove(disk: disk, mode: mode, targetPath: targetPath, capacity: capacities[disk.target] ?? 0))
        }
        let flattened = moves.filter { $0.mode == .copy && !$0.disk.chain.isEmpty }
        if type == .cold {
            for move in flattened {
                problems.append(
                    Problem(
                        code: .notSupported,
                        message: "a cold migration copies image files, and \(move.disk.target) rests on "
                            + "\(move.disk.chain.first?.path ?? "a base") that \(targetLabel) does not hold identically: "
                            + "use --type hot or warm, which copy it flattened"))
            }
        } else if !flattened.isEmpty && moves.contains(where: { $0.mode == .incremental }) {
            // libvirt copies either every disk whole or every top image: a flattened copy and an
            // incremental one cannot travel together, so all are copied whole.
            for index in moves.indices where moves[index].mode == .incremental { moves[index].mode = .copy }
        }
        let storage: MigrationOptions.Storage =
            moves.allSatisfy { $0.mode == .shared }
            ? .shared : moves.contains { $0.mode == .incremental } ? .incremental : .copy
        return (moves, storage, problems)
    }

    static func describe(_ move: DiskMove) -> String {
        switch move.mode {
        case .shared: return "\(move.disk.target): stays on shared storage (\(move.disk.path))"
        case .copy: return "\(move.disk.target): copied whole to \(move.targetPath)"
        case .incremental:
            let base = move.disk.chain.first?.path ?? "base"
            return "\(move.disk.target): only its top image is copied to \(move.targetPath), over the target's identical \(base)"
        }
    }

    /// Every problem with the options themselves, found without asking a host: code 4 for a
    /// bad value, code 6 for options that contradict each other.
    static func validate(options: MigrationOptions, destination: MigrationDestination) -> [Problem] {
        var problems: [Problem] = []
        func fail(_ code: ReturnCode, _ message: String) { problems.append(Problem(code: code, message: message)) }
        if let name = options.newName {
            do { try CloneDefinition.validate(name: name) } catch { fail(error.code, error.message) }
        }
        if let memory = options.memoryMiB, memory < 16 || memory > 16 << 20 {
            fail(.invalidParameter, "memory \(memory) MiB is not a size VMDriver gives a VM: 16 MiB to 16 TiB")
        }
        if let vcpus = options.vcpus, vcpus < 1 || vcpus > 4096 {
            fail(.invalidParameter, "\(vcpus) vCPUs is not a count VMDriver gives a VM: 1 to 4096")
        }
        if let parallel = options.parallelConnections, !(1...255).contains(parallel) {
            fail(.invalidParameter, "\(parallel) parallel connections is not a count QEMU takes: 1 to 255")
        }
        if let timeout = options.timeout, timeout <= .zero {
            fail(.invalidParameter, "a timeout of \(timeout) is not one: give a positive duration")
        }
        if let home = options.home {
            if let reason = badHome(home) { fail(.invalidParameter, "home folder \(home.debugDescription) \(reason)") }
            if options.storage == .shared {
                fail(
                    .incompatibleParameters,
                    "--home puts the VM's disks in a folder on the target, --storage shared leaves them where they are: pick one")
            }
        }
        if let pki = options.clientPKIPath, let reason = badHome(pki) {
            fail(.invalidParameter, "the client PKI path \(pki.debugDescription) \(reason)")
        }
        if let given = destination.uri, options.security != .low,
            !["+tls", "+ssh", "+libssh", "+libssh2"].contains(where: { given.prefix { $0 != ":" }.hasSuffix($0) })
        {
            fail(
                .incompatibleParameters,
                "security '\(options.security.rawValue)' needs an encrypted control connection, and \(given) is not qemu+tls:// or qemu+ssh://"
            )
        }
        if destination.disablesVerification && options.security == .high {
            fail(
                .incompatibleParameters,
                "security 'high' checks the target's certificate, and \(destination) turns the check off (no_verify): drop no_verify or choose a lower security level"
            )
        }
        return problems
    }

    /// The URI the source's libvirtd connects to: the one given, or one built for the security
    /// level (TCP for low, TLS otherwise; certificates always verified).
    static func peerURI(destination: MigrationDestination, security: MigrationOptions.Security) -> String {
        if let given = destination.uri { return given }
        let transport = security == .low ? "tcp" : "tls"
        return "qemu+\(transport)://\(destination.hostForURI)\(destination.port.map { ":\($0)" } ?? "")/system"
    }

    /// The URI of VMDriver's own connection to the target: the peer URI with the client's
    /// pkipath for TLS. The path is percent-encoded: a `&` or `?` in it must not add URI
    /// parameters (`&no_verify=1` would turn certificate checks off).
    static func clientURI(peerURI: String, pkiPath: String?) -> String {
        guard let pki = pkiPath, peerURI.contains("+tls://") else { return peerURI }
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~/")
        let encoded = pki.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        // An empty query ("…/system?") or one ending in "&" needs no separator: no empty
        // parameter in between.
        var separator = "?"
        if let mark = peerURI.firstIndex(of: "?") {
            let query = peerURI[peerURI.index(after: mark)...]
            separator = query.isEmpty || query.hasSuffix("&") ? "" : "&"
        }
        return peerURI + separator + "pkipath=\(encoded)"
    }

    /// Why a home folder cannot be one, or nil.
    static func badHome(_ home: String) -> String? {
        if let problem = Validation.pathProblem(home) { return problem }
        if (home as NSString).standardizingPath == "/" { return "is the root folder" }
        return nil
    }

    /// The definition with the disks' new paths, the new name and (persistent only) the new
    /// memory and vCPU count.
    static func rewrite(
        _ xml: String, moves: [DiskMove], options: MigrationOptions, settings: Bool, rename: Bool
    ) -> String? {
        guard let root = try? XMLTree.parse(xml) else { return nil }
        // libvirt wants the source's name in the destination XML (the new one travels as a
        // parameter) and the new one in the persistent definition.
        if rename, let name = options.newName {
            root.child("name")?.removeChildren { _ in true }
            root.child("name")?.text = name
        }
        for disk in root.child("devices")?.children("disk") ?? [] {
            guard let source = disk.child("source"), let file = source.attributes["file"],
                let move = moves.first(where: { $0.disk.path == file })
            else { continue }
            source.set("file", move.targetPath)
            // libvirt reads the chain from the image on the target; a full copy has none.
            disk.removeChildren { $0.name == "backingStore" }
        }
        if settings, let mib = options.memoryMiB {
            for element in ["memory", "currentMemory"] {
                guard let node = root.child(element) else { continue }
                node.set("unit", "MiB")
                node.text = String(mib)
            }
        }
        if settings, let vcpus = options.vcpus, let node = root.child("vcpu") {
            node.set("current", nil)
            node.text = String(vcpus)
        }
        return root.serialized()
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
        // Even for a cancelled job: its message must still say where the VM is.
        let sourceState = try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
            try VirtualMachine.state(of: domain)
        }
        let targetState = try? await destinationHost.blocking("", evenIfCancelled: true) { [targetName] connection in
            try VirtualMachine.state(of: try connection.lookupDomain(name: targetName))
        }
        var places: [String] = []
        if let sourceState { places.append("\(sourceState) on \(vm.host.label)") }
        if let targetState { places.append("\(targetState) on \(destinationHost.label)") }
        return places.isEmpty ? "the VM cannot be found on either host" : "the VM is " + places.joined(separator: " and defined ")
    }

    /// Runs the migration, watching it from this task while a pool thread blocks in libvirt.
    func execute(context: JobContext, claim: OperationClaim) async throws(VMDriverError) -> MigrationResult {
        defer { Task { try? await destinationHost.close() } }
        do {
            let result = try await perform(context: context)
            await preparation.commit()
            // The record travelled with the domain's metadata: it goes on both hosts.
            await claim.release(target: destinationHost, name: targetName)
            return result
        } catch {
            // Nothing of the VM stays on the target; a VM shut down for a cold migration runs
            // again on the source.
            let left = await preparation.rollback()
            await claim.release()
            if type == .cold && wasActive {
                try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
                    if try !domain.isActive() { try domain.start() }
                }
            }
            // Where the VM is, once everything has been put back: every failure says so.
            let leftover =
                left.isEmpty
                ? ""
                : "; VMDriver could not remove what it made on \(destinationHost.label): \(left.joined(separator: ", ")) "
                    + "(remove it before trying again)"
            throw VMDriverError(error.code, "\(error.message); \(await whereIsTheVM())\(leftover)", cause: error.cause)
        }
    }

    func perform(context: JobContext) async throws(VMDriverError) -> MigrationResult {
        let started = ContinuousClock.now
        let label = vm.label
        var steps: [String] = []

        if type == .cold && wasActive {
            context.report(JobProgress(phase: "shutting the guest down", percent: 0))
            if Task.isCancelled {
                throw VMDriverError(.failed, "migration of \(label) to \(destination) was cancelled before the VM was shut down")
            }
            // Nested: cancelling the migration cancels the shutdown (which with --force would
            // otherwise still destroy the VM at its deadline).
            _ = try await vm.shutdown(timeout: options.shutdownTimeout, force: options.force).nestedValue()
            steps.append("shut the VM down")
        }
        if type == .cold {
            for move in moves where move.mode != .shared {
                context.report(JobProgress(phase: "copying \(move.disk.target) to \(destinationHost.label)"))
                try await preparation.copyImage(move, from: vm.host)
                steps.append(
                    "copied \(move.mode == .incremental ? "the top image" : "the image") of \(move.disk.target) to \(move.targetPath)"
                )
            }
        }
        if let downtime = options.maxDowntimeMilliseconds, type != .cold {
            try await vm.host.blocking("cannot set the downtime of \(label)") { [domain = vm.domain] _ in
                try domain.setMigrationMaxDowntime(milliseconds: downtime)
            }
        }
        // The policy adds post-copy where the target may offer it; the target's QEMU is what
        // needs userfaultfd, which only trying tells on a remote host. Refused, it costs a
        // QEMU start on the target and nothing moves: then go on without it.
        var flags = self.flags
        var attempt = try await transfer(flags: flags, context: context, steps: &steps, started: started)
        if let error = attempt.error, Self.isPostcopyRefusal(error), policyAddedPostcopy, !attempt.timedOut,
            !attempt.cancelled
        {
            steps.append("post-copy is not available on \(destinationHost.label) (\(error.message)): going on without it")
            flags.remove(.postcopy)
            attempt = try await transfer(flags: flags, context: context, steps: &steps, started: started)
        }
        if let error = attempt.error {
            if attempt.pausedAt != nil {
                // Paused by the policy, still on the source: it runs again there.
                try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
                    if try domain.state().state == .paused { try domain.resume() }
                }
            }
            if attempt.timedOut {
                throw VMDriverError(
                    .timeout,
                    "migration of \(label) to \(destination) did not finish within \(Job<Void>.format(timeout)) and was aborted",
                    cause: error)
            }
            if attempt.cancelled {
                throw VMDriverError(.failed, "migration of \(label) to \(destination) was cancelled", cause: error)
            }
            if Self.isPostcopyRefusal(error) {
                throw VMDriverError(
                    .notSupported,
                    "post-copy is not available on \(destinationHost.label): its QEMU cannot use userfaultfd (QEMU runs "
                        + "unprivileged; the kernel denies it unless vm.unprivileged_userfaultfd = 1 there). Nothing moved",
                    cause: error)
            }
            if flags.contains(.tls), Self.isCertificateProblem(error) {
                throw VMDriverError(
                    .notSupported,
                    "security 'high' needs QEMU's TLS certificates on both hosts (/etc/pki/qemu): \(error.message). Nothing moved",
                    cause: error)
            }
            let code = error.code == .completed ? .failed : error.code
            throw VMDriverError(code, error.message, cause: error)
        }

        // Done: read what happened from the target, restart a cold-migrated VM.
        let targetName = self.targetName
        let restart = type == .cold && wasActive
        let resume = attempt.pausedAt != nil
        let coldSettings = type == .cold && (options.memoryMiB != nil || options.vcpus != nil)
        let options = self.options
        let (stats, state) = try await destinationHost.blocking("cannot read the migrated VM on \(destinationHost.label)") {
            connection in
            var moved = try connection.lookupDomain(name: targetName)
            let stats = try? moved.jobStats([.completed])
            if coldSettings {
                let xml = try moved.xmlDescription([.inactive, .secure])
                guard let updated = Self.rewrite(xml, moves: [], options: options, settings: true, rename: false) else {
                    throw VMDriverError(.failed, "cannot read the definition of \(targetName) on \(destinationHost.label)")
                }
                moved = try connection.defineDomain(xml: updated)
            }
            if restart, try !moved.isActive() { try moved.start() }
            if resume, try moved.state().state == .paused { try moved.resume() }
            return (stats, try VirtualMachine.state(of: moved))
        }
        // Resumed on the target just now: the pause was the guest's downtime.
        let pausedFor = attempt.pausedAt.map { ContinuousClock.now - $0 }
        if coldSettings { steps.append("defined the new memory and vCPU settings on the target") }
        if restart { steps.append("started the VM on the target") }
        if resume { steps.append("resumed the guest on the target") }
        if options.memoryMiB != nil || options.vcpus != nil, type != .cold || !restart {
            steps.append(
                "the new memory and vCPU settings are in the target's definition: they take effect at the guest's next boot")
        }
        // The VM left the source: so do the images that were copied (not shared ones, not
        // the bases a linked clone rests on).
        if !options.keepSource {
            for move in moves where move.mode != .shared {
                if await removeFromSource(move.disk.path) {
                    steps.append("removed the source's copy of \(move.disk.target) (\(move.disk.path))")
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        return MigrationResult(
            vm: targetName, source: vm.host.name, destination: destinationHost.name, type: type, storage: storage,
            security: options.security,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            downtimeMilliseconds: Self.downtime(libvirt: stats?.downtime, pausedFor: pausedFor),
            bytesTransferred: Self.bytes(stats, diskSeen: attempt.diskBytes),
            diskBytesTransferred: max(stats?.diskProcessed ?? 0, attempt.diskBytes ?? 0) > 0
                ? max(stats?.diskProcessed ?? 0, attempt.diskBytes ?? 0) : nil, state: state,
            steps: steps,
            disks: moves.map {
                MigrationResult.Disk(
                    device: $0.disk.target, mode: $0.mode.rawValue, sourcePath: $0.disk.path, targetPath: $0.targetPath)
            })
    }

    /// Deletes an image on the source after the VM moved. True when it is gone.
    func removeFromSource(_ path: String) async -> Bool {
        let storage = vm.host.storage
        return
            (try? await vm.host.blocking("", evenIfCancelled: true) { _ in
                try storage.delete(path)
                return !storage.exists(path)
            }) ?? false
    }

    /// The guest's downtime: libvirt's measure of the switch-over, or, when the policy paused
    /// the guest to finish, the whole pause (until it was resumed on the target).
    static func downtime(libvirt: UInt64?, pausedFor: Duration?) -> UInt64? {
        guard let pausedFor else { return libvirt }
        let paused =
            UInt64(max(0, pausedFor.components.seconds)) * 1000 + UInt64(pausedFor.components.attoseconds / 1_000_000_000_000_000)
        return max(libvirt ?? 0, paused)
    }

    /// Bytes moved: memory plus disks, each once. libvirt's completed stats may leave the NBD
    /// disk copy out of their total (92 MiB was reported for a copied-storage migration): the
    /// memory libvirt reports plus the disk bytes (the larger of the final figure and the
    /// largest seen while it ran); the total only when there is no memory figure.
    static func bytes(_ stats: Domain.JobStats?, diskSeen: UInt64?) -> UInt64? {
        let disk = max(stats?.diskProcessed ?? 0, diskSeen ?? 0)
        if let memory = stats?.memoryProcessed { return memory + disk }
        guard let total = stats?.dataProcessed else { return diskSeen }
        return max(total, disk)
    }

    /// True when the policy, not the caller, asked for post-copy.
    var policyAddedPostcopy: Bool { flags.contains(.postcopy) && !options.postcopy }

    static func isPostcopyRefusal(_ error: VMDriverError) -> Bool {
        error.message.localizedCaseInsensitiveContains("postcopy is not supported")
            || error.message.localizedCaseInsensitiveContains("userfaultfd")
    }

    static func isCertificateProblem(_ error: VMDriverError) -> Bool {
        ["x509", "certificate", "credentials", "/etc/pki"].contains { error.message.localizedCaseInsensitiveContains($0) }
    }

    struct Attempt {
        var error: VMDriverError?
        var timedOut = false
        var cancelled = false
        /// When the policy paused the guest to finish: it must run again wherever it ends up,
        /// and its downtime runs from here, not from libvirt's switch-over.
        var pausedAt: ContinuousClock.Instant?
        /// Disk bytes copied, as last seen (libvirt's final stats leave them out).
        var diskBytes: UInt64?
    }

    /// One libvirt migration call on a pool thread, watched from this task: progress, the
    /// convergence policy, the timeout and cancellation.
    func transfer(
        flags: Domain.MigrateFlags, context: JobContext, steps: inout [String], started: ContinuousClock.Instant
    ) async throws(VMDriverError) -> Attempt {
        let label = vm.label
        let domain = vm.domain
        let (peerURI, parameters) = (self.peerURI, self.parameters)
        let finished = MigrationDone()
        let wakeup = Wakeup()
        let migration = Task<VMDriverError?, Never> {
            defer {
                finished.mark()
                wakeup.fire()
            }
            do throws(VMDriverError) {
                try await vm.host.blocking("migration of \(label) to \(destination)", lane: .long) { _ in
                    try domain.migrate(toURI: peerURI, parameters: parameters, flags: flags)
                }
                return nil
            } catch {
                return error
            }
        }
        var attempt = Attempt()
        var policy = ConvergencePolicy(
            enabled: options.policy == .converge && type == .hot, postcopy: flags.contains(.postcopy),
            downtime: options.maxDowntimeMilliseconds ?? 300)
        let deadline = started + timeout
        while !finished.isDone {
            // Not Task.sleep: once the job is cancelled that returns at once, and the loop
            // would spin until libvirt's call returns. The call's end wakes it early.
            await wakeup.wait(upTo: .milliseconds(250))
            if finished.isDone { break }
            if Task.isCancelled && !attempt.cancelled {
                attempt.cancelled = true
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            if ContinuousClock.now > deadline && !attempt.timedOut && !attempt.cancelled {
                attempt.timedOut = true
                steps.append("timeout after \(Job<Void>.format(timeout)): aborted")
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            guard let stats = try? await vm.host.blocking("", evenIfCancelled: true, { _ in try domain.jobStats() }),
                stats.type != .none
            else { continue }
            context.report(Self.progress(stats, type: type))
            if let disk = stats.diskProcessed, disk > 0 { attempt.diskBytes = max(attempt.diskBytes ?? 0, disk) }
            if let action = policy.next(stats) {
                steps.append(action.description)
                if action == .pause { attempt.pausedAt = .now }
                vm.host.logger.info("\(label): \(action.description)")
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in
                    switch action {
                    case .downtime(let milliseconds): try domain.setMigrationMaxDowntime(milliseconds: milliseconds)
                    case .postcopy: try domain.startPostCopy()
                    case .pause: try domain.suspend()
                    case .throttling: break
                    }
                }
            }
        }
        attempt.error = await migration.value
        return attempt
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

/// The steps VMDriver takes when a live migration does not converge: the data left at the
/// start of a pass not falling below the best seen so far. Each stalled pass raises the
/// allowed downtime towards what the remaining data would need at the measured bandwidth
/// (bounded); auto-converge (on from the start) throttles the guest, which is reported when
/// QEMU starts doing it; once the downtime is at its bound and the migration still stalls, it
/// switches to post-copy where allowed, and otherwise pauses the guest so the last pages can
/// move (as Nova's force-complete and virsh's --timeout-suspend do); it resumes on the target.
struct ConvergencePolicy {
    enum Action: CustomStringConvertible, Equatable {
        case downtime(UInt64)
        case throttling(Int32)
        case postcopy
        case pause
        var description: String {
            switch self {
            case .downtime(let ms): "not converging: allowed downtime raised to \(ms) ms"
            case .throttling(let percent): "auto-converge is throttling the guest's vCPUs (\(percent)%)"
            case .postcopy: "still not converging: switched to post-copy"
            case .pause: "still not converging: paused the guest to move the last pages (it resumes on the target)"
            }
        }
    }

    static let downtimeBound: UInt64 = 2000

    let enabled: Bool
    let postcopy: Bool
    private(set) var downtime: UInt64
    private var lastIteration: UInt64 = 0
    private var bestRemaining: UInt64 = .max
    private var stalledAtBound = 0
    private var throttleSeen = false
    private var switched = false

    init(enabled: Bool, postcopy: Bool, downtime: UInt64 = 300) {
        self.enabled = enabled
        self.postcopy = postcopy
        self.downtime = downtime
    }

    /// Looks at one sample of the job's stats; returns the next step, if one is due.
    mutating func next(_ stats: Domain.JobStats) -> Action? {
        guard enabled, !switched else { return nil }
        if !throttleSeen, let throttle = stats.autoConvergeThrottle, throttle > 0 {
            throttleSeen = true
            return .throttling(throttle)
        }
        guard let iteration = stats.memoryIteration, let remaining = stats.memoryRemaining, iteration > lastIteration
        else { return nil }
        lastIteration = iteration
        guard iteration >= 2 else { return nil }
        if remaining + remaining / 10 < bestRemaining {
            bestRemaining = min(bestRemaining, remaining)
            return nil
        }
        if downtime < Self.downtimeBound {
            // What the data left would take at the measured bandwidth, at least twice the last.
            let needed = stats.memoryBytesPerSecond.map { $0 > 0 ? remaining * 1000 / $0 : 0 } ?? 0
            downtime = min(Self.downtimeBound, max(downtime * 2, needed))
            return .downtime(downtime)
        }
        stalledAtBound += 1
        guard stalledAtBound >= 2 else { return nil }
        switched = true
        return postcopy ? .postcopy : .pause
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

/// The folder a path is in.
func folder(_ path: String) -> String { PathName.parent(path) }
