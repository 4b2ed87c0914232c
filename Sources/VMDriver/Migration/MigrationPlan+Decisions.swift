import Foundation
internal import Libvirt
import Synchronization

/// The pure decisions of a migration: from gathered facts and options to a type, how each disk
/// travels, libvirt's flags and parameters, and every reason to refuse. Nothing here asks a host.
extension MigrationPlan {
    /// What a migration does, decided from the gathered facts, the options and the source's
    /// capabilities alone (pure: the fuzz suite drives it with made-up facts): the type, how
    /// each disk travels, the flags and parameters, the timeout, and every reason to refuse.
    struct Decision: Sendable {
        var type: MigrationOptions.MigrationType
        var storage: MigrationOptions.Storage
        var moves: [DiskMove]
        var flags: Domain.MigrateFlags
        var parameters: Domain.MigrationParameters
        var timeout: Duration
        var decisions: [String]
        var problems: [Problem]
        /// The cloud-init seed copied to the target (from, to), when its folder is not shared.
        var seed: (source: String, target: String)? = nil
    }

    static func decide(
        facts: MigrationFacts, options: MigrationOptions, destination: MigrationDestination, caps: Capabilities,
        peerURI: String, targetName: String, label: String, sourceLabel: String, targetLabel: String
    ) -> Decision {
        var problems: [Problem] = []
        func fail(_ code: ReturnCode, _ message: String) { problems.append(Problem(code: code, message: message)) }
        if facts.sameHost {
            fail(.invalidParameter, "\(destination) is \(sourceLabel) itself, where \(label) already is: give another host")
        }
        if facts.busy {
            // A migration in flight holds the VM's name on the target too: say what is going on,
            // not that the name is taken.
            fail(
                .invalidState,
                "\(label) is busy with another job (a migration?) on \(sourceLabel): wait for it to end or cancel it")
        } else if facts.nameTaken {
            fail(
                .invalidParameter,
                "a VM named '\(targetName)' already exists on \(targetLabel): pass a new name (--name) or remove it")
        }
        // The type. A TCG guest on a QEMU that loses its writes in a live move (see
        // Capabilities.Feature.tcgLive) moves warm: paused while its memory moves, nothing lost.
        let tcg = facts.domainType == "qemu"
        let liveLosesWrites = tcg && caps.features[.tcgLive]?.status == .unavailable
        var type = options.type
        var typeNote: String?
        if type == .auto {
            type = facts.state.isActive ? (liveLosesWrites ? .warm : .hot) : .cold
            if facts.state.isActive && liveLosesWrites {
                typeNote = "warm, not hot: \(caps.features[.tcgLive]?.reason ?? "")"
            }
        }
        switch (type, facts.state) {
        case (_, .suspendedToDisk):
            fail(
                .invalidState,
                "\(label) is suspended to disk: its saved memory state cannot move; start it or discard the saved state first")
        case (.hot, let state) where !state.isActive, (.warm, let state) where !state.isActive:
            fail(.invalidState, "\(label) is \(state): a \(type.rawValue) migration needs it running; use --type cold (or auto)")
        default: break
        }
        if let level = caps.migrationTypes[type], !level.isAvailable {
            fail(.notSupported, "\(type.rawValue) migration is not supported on \(sourceLabel): \(level.reason ?? "")")
        }
        if type == .hot && liveLosesWrites {
            fail(
                .notSupported,
                "hot migration is refused for \(label): it runs under TCG (domain type 'qemu') on \(sourceLabel), where "
                    + "\(caps.features[.tcgLive]?.reason ?? "a live move loses guest writes"); use --type warm or cold")
        }
        // QEMU 7.2 blocks the live migration of any vmdk node ("The vmdk format used by node …
        // does not support live migration"): a VM opened from a .vmx moves cold until converted.
        if type == .hot || type == .warm, let layout = facts.layout {
            for disk in layout.disks {
                let vmdk = ([VMDetails.BackingImage(path: disk.path, format: disk.format)] + disk.chain).first {
                    $0.format == "vmdk"
                }
                if let vmdk {
                    fail(
                        .notSupported,
                        "\(type.rawValue) migration of \(label) is refused: its disk \(disk.target) rests on the vmdk image "
                            + "\(vmdk.path), and QEMU does not migrate a running VM with a vmdk disk (\"The vmdk format used by "
                            + "node … does not support live migration\"); use --type cold, or shut it down and copy its disks to "
                            + "qcow2 with `vmctl convert VM` (VirtualMachine.convertDisks), after which it moves live")
                    break
                }
            }
        }
        // Post-copy of a TCG guest lost guest pages in VMDriver's page-pattern test (QEMU 7.2,
        // 3 of 3 runs with a bandwidth cap, the same with plain virsh): never for TCG guests.
        if options.postcopy && tcg {
            fail(
                .notSupported,
                "post-copy is refused for \(label): it runs under TCG (domain type 'qemu'), where post-copy lost guest memory "
                    + "pages in VMDriver's page-pattern test; use --type warm, paused while its memory moves")
        }
        // Storage: how each disk travels.
        var storage = options.storage
        var moves: [DiskMove] = []
        if let error = facts.layoutError {
            fail(error.code, error.message)
        } else if let layout = facts.layout {
            let decided = Self.decideStorage(
                layout: layout, shared: facts.shared, bases: facts.bases, capacities: facts.capacities, options: options,
                type: type, targetLabel: targetLabel, carryChains: !facts.snapshots.isEmpty)
            moves = decided.moves
            storage = decided.storage
            for problem in decided.problems { fail(problem.code, problem.message) }
            for path in facts.occupied where moves.contains(where: { $0.mode != .shared && $0.targetPath == path }) {
                fail(
                    .invalidParameter,
                    "\(path) already exists on \(targetLabel): VMDriver does not overwrite it; remove it or pick another --home")
            }
        }

        // Snapshots travel with the VM (SnapshotCarry): their images must be where the VM lands.
        if !facts.snapshots.isEmpty {
            let names = facts.snapshots.names.map { "'\($0)'" }.joined(separator: ", ")
            let inside = facts.snapshots.snapshots.filter(\.isInternal).map(\.name)
            if !inside.isEmpty, let move = moves.first(where: { $0.mode != .shared }) {
                fail(
                    .incompatibleParameters,
                    "\(label) has internal snapshots (\(inside.joined(separator: ", "))) inside its images, and "
                        + "\(move.disk.target) would be copied, which takes only what the VM sees now: keep its disks on shared storage"
                )
            } else if let move = moves.first(where: { $0.mode == .copy }) {
                // Why the chain cannot travel whole (DiskMove.seed): a base the target holds
                // with other bytes, one that could not be compared, or a new home folder.
                func compared(_ base: VMDetails.BackingImage) -> Bool?? {
                    switch facts.bases[base.path] {
                    case .success(let same)?: same
                    default: .none
                    }
                }
                let why: String
                if options.home != nil {
                    why = "its chain cannot move into --home (the images name their backing files by path)"
                } else if let differs = move.disk.chain.first(where: { compared($0) == .some(false) }) {
                    why =
                        "\(differs.path) on \(targetLabel) is another image than the source's, and VMDriver does not overwrite it"
                } else if let unknown = move.disk.chain.first(where: { compared($0) == .none }) {
                    why = "\(unknown.path) could not be compared with \(targetLabel)'s"
                } else {
                    why = "its images cannot be copied there"
                }
                fail(
                    .incompatibleParameters,
                    "\(label) has snapshots (\(names)) resting on the images of \(move.disk.target), and \(why): a full copy "
                        + "would take only what the VM sees now, not the images the snapshots need; remove or rename it, or "
                        + "keep the disks on shared storage")
            }
        }

        // Flags and parameters.
        var (flags, parameters) = Self.translate(
            type: type, destination: destination, options: options, moves: moves, tcg: tcg,
            autoConverge: caps.features[.autoConverge]?.status != .unavailable)
        let travelling = moves.filter { $0.mode != .shared }
        if let name = options.newName { parameters.destinationName = name }
        // The seed: a read-only file libvirt does not copy. Where both hosts see it, it stays.
        var seed: (source: String, target: String)?
        if let facts = facts.seed, facts.shared != true {
            seed = (facts.path, options.home.map { "\($0)/\(PathName.last(facts.path))" } ?? facts.path)
            if facts.occupied {
                fail(
                    .invalidParameter,
                    "\(seed?.target ?? facts.path) already exists on \(targetLabel), where \(label)'s cloud-init seed would be copied: remove or rename it"
                )
            }
        }
        let seedMoves = seed.map { $0.source != $0.target } ?? false
        // New paths (--home), flattened copies and new settings travel as destination XML.
        let newPaths = travelling.filter { $0.targetPath != $0.disk.path || ($0.mode == .copy && !$0.disk.chain.isEmpty) }
        let newSettings = options.memoryMiB != nil || options.vcpus != nil
        if type == .cold {
            // Offline, libvirt checks the destination XML against the source's ABI and defines
            // it as it is: new settings are defined on the target afterwards (execute).
            if !newPaths.isEmpty || seedMoves, let xml = facts.inactiveXML {
                parameters.destinationXML = Self.rewrite(
                    xml, moves: newPaths, seed: seed, options: options, settings: false, rename: false)
            }
        } else {
            if !newPaths.isEmpty || seedMoves, let xml = facts.liveXML {
                parameters.destinationXML = Self.rewrite(
                    xml, moves: newPaths, seed: seed, options: options, settings: false, rename: false)
            }
            if !newPaths.isEmpty || seedMoves || newSettings, let xml = facts.inactiveXML {
                parameters.persistentXML = Self.rewrite(
                    xml, moves: newPaths, seed: seed, options: options, settings: true, rename: true)
            }
        }
        let memoryMiB = facts.memoryKiB / 1024
        // Default: a minute, plus a second per 8 MiB of memory, plus half a minute and a minute
        // per GiB of each disk that is copied.
        var seconds = 60 + Int64(memoryMiB) / 8
        for move in travelling { seconds += 30 + Int64(move.capacity >> 30) * 60 }
        let timeout = options.timeout ?? .seconds(seconds)
        var decisions: [String] = [
            typeNote.map { "type \($0)" } ?? "type \(type.rawValue)", "storage \(storage.rawValue)",
            "security \(options.security.rawValue)",
            "peer URI \(peerURI)", "flags \(describe(flags))", "timeout \(Job<Void>.format(timeout))",
        ]
        for move in moves { decisions.append(Self.describe(move)) }
        for base in Set(moves.filter { $0.mode == .incremental }.flatMap { $0.disk.chain.map(\.path) })
            .intersection(facts.basesKnown).sorted()
        {
            decisions.append("\(base): identical on \(targetLabel) by the content digests VMDriver recorded (nothing read)")
        }
        if !facts.snapshots.isEmpty {
            decisions.append(
                "snapshots \(facts.snapshots.names.joined(separator: ", ")): taken off \(sourceLabel) for the move and "
                    + "redefined on \(targetLabel) (or back on \(sourceLabel) if it fails)")
        }
        if let home = options.home { decisions.append("home \(home) on \(targetLabel) (made if missing)") }
        if let seed {
            decisions.append("cloud-init seed \(seed.source): copied to \(seed.target) (read-only, libvirt does not copy it)")
        }
        return Decision(
            type: type, storage: storage, moves: moves, flags: flags, parameters: parameters, timeout: timeout,
            decisions: decisions, problems: problems, seed: seed)
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
    /// top image when the target holds an identical backing chain, else copied whole. With
    /// `carryChains` (the VM has snapshots, whose images are its chain), and with `--storage
    /// incremental`, a disk that is not shared keeps its chain: the bases the target lacks are
    /// copied first (`DiskMove.seed`), then only the top image moves; a base the target holds
    /// with other bytes is code 6. (`auto` copies a linked clone flattened instead: it puts no
    /// base on the target that nobody asked for.)
    static func decideStorage(
        layout: DiskLayout, shared: [String: Bool], bases: [String: Result<Bool?, VMDriverError>],
        capacities: [String: UInt64], options: MigrationOptions, type: MigrationOptions.MigrationType, targetLabel: String,
        carryChains: Bool = false
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
        /// The bases to copy so the chain arrives whole (deepest first), when every base is
        /// either identical on the target or missing there; nil when one differs or cannot be
        /// compared, or for a home folder (the chain's absolute backing paths would not hold).
        func seed(_ disk: DiskLayout.Disk) -> [String]? {
            guard carryChains || options.storage == .incremental, options.home == nil, !disk.chain.isEmpty else {
                return nil
            }
            var missing: [String] = []
            for base in disk.chain {
                switch bases[base.path] {
                case .success(true)?: continue
                case .success(nil)?: missing.append(base.path)
                default: return nil
                }
            }
            return missing.reversed()
        }
        var moves: [DiskMove] = []
        for disk in layout.disks {
            let inPlace: Bool? = options.home != nil ? false : shared[folder(disk.path)]
            var mode: DiskMove.Mode
            var seeded: [String] = []
            switch options.storage {
            case .shared: mode = .shared
            case .copy:
                mode = .copy
                if let bases = seed(disk) { (mode, seeded) = (.incremental, bases) }
            case .incremental:
                mode = disk.chain.isEmpty ? .copy : .incremental
                if mode == .incremental, let error = chainReady(disk) {
                    if let bases = seed(disk) {
                        seeded = bases
                    } else {
                        problems.append(Problem(code: error.code, message: "--storage incremental: \(error.message)"))
                    }
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
                } else if !disk.chain.isEmpty && chainReady(disk) == nil {
                    mode = .incremental
                } else if let bases = seed(disk) {
                    (mode, seeded) = (.incremental, bases)
                } else {
                    mode = .copy
                }
            }
            let targetPath = options.home.map { "\($0)/\(PathName.last(disk.path))" } ?? disk.path
            if mode != .shared && capacities[disk.target] == nil {
                problems.append(Problem(code: .failed, message: "cannot read the size of \(disk.target) (\(disk.path))"))
            }
            moves.append(
                DiskMove(
                    disk: disk, mode: mode, targetPath: targetPath, capacity: capacities[disk.target] ?? 0, seed: seeded))
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
            // incremental one cannot travel together, so all are copied whole (a chain that
            // must arrive whole cannot: the snapshot check refuses that, code 6).
            for index in moves.indices where moves[index].mode == .incremental && moves[index].seed.isEmpty {
                moves[index].mode = .copy
            }
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
        case .incremental where !move.seed.isEmpty:
            return "\(move.disk.target): its backing chain goes first (\(move.seed.joined(separator: ", ")) copied to the same "
                + "paths), then only its top image is copied to \(move.targetPath)"
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
        _ xml: String, moves: [DiskMove], seed: (source: String, target: String)? = nil, options: MigrationOptions,
        settings: Bool, rename: Bool
    ) -> String? {
        guard let root = try? XMLTree.parse(xml) else { return nil }
        // libvirt wants the source's name in the destination XML (the new one travels as a
        // parameter) and the new one in the persistent definition.
        if rename, let name = options.newName {
            root.child("name")?.removeChildren { _ in true }
            root.child("name")?.text = name
        }
        if let seed, seed.source != seed.target {
            for disk in root.child("devices")?.children("disk") ?? []
            where disk.child("source")?.attributes["file"] == seed.source {
                disk.child("source")?.set("file", seed.target)
            }
            for record in root.child("metadata")?.children ?? []
            where record.attributes.values.contains(NoCloudSeed.namespace) && record.attributes["path"] == seed.source {
                record.set("path", seed.target)
            }
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

    static func describe(_ flags: Domain.MigrateFlags) -> String {
        let names: [(Domain.MigrateFlags, String)] = [
            (.live, "live"), (.peerToPeer, "p2p"), (.persistDestination, "persist-dest"), (.undefineSource, "undefine-source"),
            (.nonSharedDisk, "copy-storage-all"), (.nonSharedIncremental, "copy-storage-inc"), (.unsafe, "unsafe"),
            (.offline, "offline"), (.compressed, "compressed"), (.autoConverge, "auto-converge"), (.postcopy, "postcopy"),
            (.tls, "tls"), (.parallel, "parallel"),
        ]
        return names.filter { flags.contains($0.0) }.map(\.1).joined(separator: ",")
    }
}
