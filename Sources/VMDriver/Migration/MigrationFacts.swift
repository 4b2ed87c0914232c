import Foundation
internal import Libvirt
import Synchronization

/// What a migration is decided from, gathered from both hosts in one blocking pass (the VM's
/// state and disks, what each host's storage says, the definitions to move). The decisions
/// (`MigrationPlan.decide`) take this value and nothing else from the hosts, so they can be
/// tested and fuzzed without one.
struct MigrationFacts: Sendable {
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
    /// Bases found identical by their recorded digests (`ImageDigests`): neither was read.
    var basesKnown: Set<String> = []
    /// Both hosts' UUIDs, when both capabilities say: what image fingerprints are made with.
    var hostUUIDs: (source: String, target: String)? = nil
    /// Images that would be created on the target and already exist there.
    var occupied: [String]
    /// The definitions to move: live (if running) and persistent, migratable.
    var liveXML: String?
    var inactiveXML: String?
    /// The VM's snapshots, which travel with it (SnapshotCarry).
    var snapshots = SnapshotCarry(snapshots: [])
    /// The VM's cloud-init seed (`NoCloudSeed`), a read-only file of its own that libvirt's
    /// storage copy leaves behind.
    var seed: SeedFacts?

    struct SeedFacts: Sendable, Equatable {
        var path: String
        /// Both hosts see its folder (nil: cannot tell, or not asked: --storage given).
        var shared: Bool?
        /// A file is where the seed would go on the target.
        var occupied: Bool
    }

    /// Gathers the facts. A folder no storage pool covers gets a transient pool on each host
    /// for the checks, taken away when they end.
    static func gather(
        vm: VirtualMachine, target: Host, options: MigrationOptions, targetName: String
    ) async throws(VMDriverError) -> MigrationFacts {
        let (source, label) = (vm.host, vm.label)
        return try await source.blocking("cannot check the migration of \(label)") { [domain = vm.domain] connection in
            let state = try VirtualMachine.state(of: domain)
            let busy = ((try? domain.jobStats())?.type ?? .none) != .none
            let sourceUUID = hostUUID(try connection.capabilitiesXML())
            let targetConnection = target.connection
            let targetUUID = hostUUID(try targetConnection.capabilitiesXML())
            let hostUUIDs = sourceUUID.flatMap { from in targetUUID.map { (source: from, target: $0) } }
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
            var basesKnown: Set<String> = []
            // One probe per folder, however many bases it holds (nil inside: cannot tell).
            var baseFolders: [String: Bool?] = shared.mapValues { $0 }
            // A chain that snapshots rest on travels whole: the target's copy of each base is
            // compared even for --storage copy (the bases it lacks are copied first).
            let snapshots = try SnapshotCarry.read(domain)
            if options.storage == .auto || options.storage == .incremental || (options.storage == .copy && !snapshots.isEmpty) {
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
                            let found = try MigrationStorage.sameImage(
                                base.path, source: source.storage, target: targetConnection, hosts: hostUUIDs)
                            bases[base.path] = .success(found?.same)
                            if found?.known == true { basesKnown.insert(base.path) }
                        } catch let error as VMDriverError {
                            bases[base.path] = .failure(error)
                        } catch {
                            bases[base.path] = .failure(VMDriverError(.failed, "cannot compare \(base.path): \(error)"))
                        }
                    }
                }
            }
            // The seed: its folder shared, or the file copied (beside the disks in --home).
            var seed: SeedFacts?
            if let record = (try? XMLTree.parse(try domain.xmlDescription([.inactive]))).flatMap(NoCloudSeed.recorded(in:)) {
                let directory = folder(record.path)
                checking.cover(directory, connection: connection)
                checking.cover(directory, connection: targetConnection)
                let shared: Bool? =
                    options.home != nil
                    ? false
                    : options.storage == .shared
                        ? true
                        : options.storage == .auto
                            ? (baseFolders[directory] ?? shared[directory]
                                ?? StoragePools.sameStorage(directory, source: connection, target: targetConnection)) : false
                let path = options.home.map { "\($0)/\(PathName.last(record.path))" } ?? record.path
                seed = SeedFacts(
                    path: record.path, shared: shared,
                    occupied: shared != true && (try? ImageInspector.volume(at: path, connection: targetConnection)) != nil)
            }
            var occupied: [String] = []
            for disk in disks where shared[folder(disk.path)] != true || options.home != nil {
                let path = options.home.map { "\($0)/\(PathName.last(disk.path))" } ?? disk.path
                if (try? ImageInspector.volume(at: path, connection: targetConnection)) != nil { occupied.append(path) }
            }
            return MigrationFacts(
                state: state, sameHost: sourceUUID != nil && sourceUUID == targetUUID, nameTaken: taken, busy: busy,
                layout: layout,
                layoutError: layoutError, memoryKiB: try domain.info().maxMemoryKiB,
                domainType: (try? XMLTree.parse(domain.xmlDescription()))?.attributes["type"], shared: shared,
                capacities: capacities, bases: bases, basesKnown: basesKnown, hostUUIDs: hostUUIDs, occupied: occupied,
                liveXML: state.isActive ? try domain.xmlDescription([.migratable, .secure]) : nil,
                inactiveXML: try? domain.xmlDescription([.inactive, .migratable, .secure]),
                snapshots: snapshots, seed: seed)
        }
    }
}

/// The `<host><uuid>` of a capabilities document.
func hostUUID(_ capabilitiesXML: String) -> String? {
    (try? XMLTree.parse(capabilitiesXML))?.child("host")?.child("uuid")?.trimmedText
}

/// The folder a path is in.
func folder(_ path: String) -> String { PathName.parent(path) }
