import Foundation
internal import Libvirt

/// Everything a clone needs, checked before the job starts.
struct ClonePlan: Sendable {
    struct Disk: Sendable {
        var source: DiskLayout.Disk
        var target: String
        var format: String
    }

    let source: VirtualMachine
    let name: String
    let type: CloneType
    let snapshot: String?
    let directory: String
    let xmlFile: String?
    /// A `.vmx` path the clone answers to (VixVM_Clone's destConfigPathName): recorded in its
    /// definition, never written.
    let vmxPath: String?
    let disks: [Disk]
    let nvram: (source: String, target: String)?
    /// For a clone from a snapshot: the images it froze, per target.
    let snapshotBases: [String: VMDetails.BackingImage]
    let sourceState: VMState
    /// A clone's NoCloud seed: what it holds, its file, and its CD-ROM's place.
    struct Seed: Sendable {
        var seed: NoCloudSeed
        var path: String
        var unit: (dev: String, bus: String)
    }

    /// The clone's NoCloud seed, when the options ask for one.
    let seed: Seed?
    /// Run virt-sysprep on the clone's disks before it is registered.
    let sysprep: Bool
    /// The clone's UUID, chosen now so its record can tell a completed clone from a half-made one
    /// (and its seed's instance-id is made of it).
    let uuid: UUID
    /// The name of the temporary freeze a full clone of a running source makes for its copy.
    let copySnapshot = "vmdriver-copy-\(ClonePlan.stamp())-\(UUID().uuidString.prefix(6).lowercased())"

    static let locks = KeyedLock<UUID>()

    static func make(
        source: VirtualMachine, name: String, type: CloneType, snapshot: String?, destination: String?,
        options: CloneOptions = CloneOptions()
    ) async throws(VMDriverError) -> ClonePlan {
        try CloneDefinition.validate(name: name)
        if let destination, let reason = Self.badDestination(destination) {
            throw VMDriverError(.invalidParameter, "clone destination \(destination.debugDescription) \(reason)")
        }
        let hostname = try options.validated(cloneName: name)
        let host = source.host
        try (CapabilityProbe.cloneTypes(on: host)[type] ?? .unavailable("unknown clone type")).require(
            "a \(type.rawValue) clone", on: host.name)
        if hostname != nil { try NoCloudSeed.support.require("a clone with a cloud-init seed", on: host.name) }
        if options.sysprep { try Sysprep.support(on: host).require("a clone reset by virt-sysprep", on: host.name) }
        let uuid = UUID()
        let label = source.label
        return try await host.blocking("cannot clone \(label)") { [domain = source.domain] connection in
            if (try? connection.lookupDomain(name: name)) != nil {
                throw VMDriverError(
                    .invalidParameter, "a VM named '\(name)' already exists on \(host.label): choose another name")
            }
            let state = try VirtualMachine.state(of: domain)
            if type == .linked && state == .suspendedToDisk {
                throw VMDriverError(
                    .invalidState,
                    "\(label) is suspended to disk: a linked clone would lose its saved memory state (VIX 3007 VM_IS_RUNNING); start it or shut it down first"
                )
            }
            let layout = try DiskLayout.read(domain: domain, host: host, label: label, active: state.isActive)
            var bases: [String: VMDetails.BackingImage] = [:]
            if let snapshot {
                let info: SnapshotInfo
                do {
                    info = try VirtualMachine.snapshotInfo(try domain.lookupSnapshot(name: snapshot), host: host)
                } catch let error as LibvirtError where error.code == .noDomainSnapshot {
                    throw VMDriverError(.invalidParameter, "\(label) has no snapshot named '\(snapshot)'", cause: error)
                }
                for disk in layout.disks {
                    guard let frozen = info.disks.first(where: { $0.target == disk.target }), let image = frozen.frozenImage
                    else {
                        throw VMDriverError(
                            .notSupported,
                            "snapshot '\(snapshot)' of \(label) has no external image for disk \(disk.target): only disk-only external snapshots (vmctl snapshot create) can be cloned"
                        )
                    }
                    bases[disk.target] = VMDetails.BackingImage(path: image, format: frozen.frozenFormat ?? "qcow2")
                }
            }
            // Where the clone goes.
            var directory = layout.disks.first.map { PathName.parent($0.path) } ?? "/var/lib/libvirt/images"
            var xmlFile: String?
            var vmxPath: String?
            if let destination {
                if destination.hasSuffix(".xml") {
                    xmlFile = destination
                    directory = PathName.parent(destination)
                } else if destination.lowercased().hasSuffix(".vmx") {
                    vmxPath = (destination as NSString).standardizingPath
                    directory = PathName.parent(destination)
                } else {
                    directory = destination
                }
            }
            directory = (directory as NSString).standardizingPath
            // On the host: a remote host's folder is asked through its storage API.
            let storage = host.storage
            if storage.kind(of: directory) == .other {
                throw VMDriverError(.invalidParameter, "clone destination \(directory) is not a directory")
            }
            let disks = layout.disks.map { disk -> Disk in
                let format = type == .linked ? "qcow2" : disk.format
                let suffix = format == "qcow2" ? "qcow2" : "img"
                return Disk(source: disk, target: "\(directory)/\(name)-\(disk.target).\(suffix)", format: format)
            }
            let nvram = layout.nvram.map { ($0, "\(directory)/\(name)_VARS.fd") }
            var seed: Seed?
            if let hostname {
                seed = Seed(
                    seed: NoCloudSeed(cloneUUID: uuid, hostname: hostname, options: options),
                    path: "\(directory)/\(NoCloudSeed.fileName(clone: name))",
                    unit: try NoCloudSeed.unit(in: try domain.xmlDescription([.inactive])))
            }
            let targets = disks.map(\.target) + [xmlFile, nvram?.1, vmxPath, seed?.path].compactMap { $0 }
            if let taken = targets.first(where: storage.exists) {
                throw VMDriverError(
                    .invalidParameter, "cannot clone \(label) as '\(name)': \(taken) already exists (nothing was overwritten)")
            }
            if Set(targets).count != targets.count {
                throw VMDriverError(.invalidParameter, "cannot clone \(label): two of its disks would get the same file name")
            }
            return ClonePlan(
                source: source, name: name, type: type, snapshot: snapshot, directory: directory, xmlFile: xmlFile,
                vmxPath: vmxPath, disks: disks, nvram: nvram, snapshotBases: bases, sourceState: state, seed: seed,
                sysprep: options.sysprep, uuid: uuid)
        }
    }

    /// Why a clone destination cannot be one, or nil: libvirt wants absolute disk paths, and a
    /// control character in a path is a mistake or an attack, never a folder name.
    static func badDestination(_ destination: String) -> String? {
        if let problem = Validation.pathProblem(destination) { return problem }
        if destination.hasSuffix(".xml"), PathName.last(destination) == ".xml" {
            return "names no file (.xml alone)"
        }
        return nil
    }

    /// Now, in UTC, as yyyyMMdd-HHmmss. From gmtime_r rather than a DateFormatter: creating
    /// one costs about 2 ms (ICU), and every clone plan names its temporary freeze with this.
    static func stamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        return String(
            format: "%04d%02d%02d-%02d%02d%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
            parts.tm_min, parts.tm_sec)
    }

    /// A clone name as it may appear inside a snapshot name and file name.
    static func fileSafe(_ name: String) -> String {
        String(
            name.unicodeScalars.map {
                CharacterSet.alphanumerics.contains($0) || "-_".unicodeScalars.contains($0) ? Character($0) : "_"
            })
    }
}
