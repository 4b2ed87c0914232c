import Foundation
internal import Libvirt

/// A disk-only external snapshot: at the moment it was taken, each disk's image was frozen and
/// the VM went on writing to a new overlay on top of it. The frozen images are what linked
/// clones rest on.
public struct SnapshotInfo: Sendable, Codable, Equatable {
    public struct Disk: Sendable, Codable, Equatable {
        /// Guest device (vda).
        public var target: String
        /// The image frozen by the snapshot: the VM's disk as it was at that moment.
        public var frozenImage: String?
        public var frozenFormat: String?
        /// The overlay the VM wrote to after the snapshot.
        public var overlay: String
    }

    public var name: String
    public var creationTime: Date?
    /// The VM's state when the snapshot was taken (libvirt's word: running, shutoff …).
    public var vmState: String?
    public var disks: [Disk]
    /// libvirt's current snapshot of the VM (the last one taken or reverted to).
    public var isCurrent = false
}

extension VirtualMachine {
    /// Takes a disk-only external snapshot: the disks' current images are frozen and the VM
    /// (running or not) goes on writing to new overlays beside them.
    /// - Throws: code 4 for a bad or taken name, code 5 for a VM suspended to disk (its memory
    ///   state would no longer match its disks). Calls `virDomainSnapshotCreateXML`.
    public func createSnapshot(name: String) async throws(VMDriverError) -> SnapshotInfo {
        try CloneDefinition.validate(name: name)
        let label = self.label
        let host = self.host
        return try await host.blocking("cannot snapshot \(label)") { [domain] _ in
            if (try? domain.lookupSnapshot(name: name)) != nil {
                throw VMDriverError(.invalidParameter, "\(label) already has a snapshot named '\(name)'")
            }
            let layout = try DiskLayout.read(domain: domain, host: host, label: label)
            try Self.requireSnapshottable(domain: domain, label: label)
            _ = try Self.freeze(
                domain: domain, layout: layout, vmName: try domain.name(), snapshot: name, keepMetadata: true,
                storage: host.storage)
            return try Self.snapshotInfo(try domain.lookupSnapshot(name: name), host: host)
        }
    }

    /// The VM's snapshots, oldest first (libvirt keeps whole seconds: within one, parents
    /// first). Calls `virDomainListAllSnapshots`.
    public func snapshots() async throws(VMDriverError) -> [SnapshotInfo] {
        let host = self.host
        return try await host.blocking("cannot list the snapshots of \(label)") { [domain] _ in
            try domain.listAllSnapshots(topological: true).map { try Self.snapshotInfo($0, host: host) }.enumerated()
                .sorted {
                    ($0.element.creationTime ?? .distantPast, $0.offset) < ($1.element.creationTime ?? .distantPast, $1.offset)
                }
                .map(\.element)
        }
    }

    /// Forgets a snapshot. Its files stay: they are part of the VM's disk chain (and may back
    /// linked clones), and libvirt 9 cannot merge external snapshots away.
    /// - Throws: code 4 if there is no such snapshot. Calls `virDomainSnapshotDelete` with
    ///   VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY.
    public func deleteSnapshot(name: String) async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot delete snapshot '\(name)' of \(label)") { [domain] _ in
            let snapshot: DomainSnapshot
            do {
                snapshot = try domain.lookupSnapshot(name: name)
            } catch {
                throw VMDriverError(.invalidParameter, "\(label) has no snapshot named '\(name)'", cause: error)
            }
            try snapshot.delete([.metadataOnly])
        }
    }

    /// Code 5 for a VM whose memory is saved to disk: its disks must not move under it.
    static func requireSnapshottable(domain: Domain, label: String, state: VMState? = nil) throws {
        if try state ?? Self.state(of: domain) == .suspendedToDisk {
            throw VMDriverError(
                .invalidState,
                "\(label) is suspended to disk: its saved memory state belongs to its current disks; start it (or discard the saved state) first"
            )
        }
    }

    /// The overlay `freeze` gives a disk: beside its image, named after the VM, the device and
    /// the snapshot.
    static func overlayPath(disk: DiskLayout.Disk, vmName: String, snapshot: String) -> String {
        "\(PathName.parent(disk.path))/\(vmName)-\(disk.target)-\(snapshot).qcow2"
    }

    /// Freezes every writable disk with an external disk-only snapshot and returns, per disk,
    /// the frozen image and the overlay the VM now writes to. Blocking.
    /// - Parameters:
    ///   - keepMetadata: false leaves no snapshot object behind (a temporary freeze).
    ///   - storage: the domain's host's files, where the new overlays go.
    static func freeze(
        domain: Domain, layout: DiskLayout, vmName: String, snapshot: String, keepMetadata: Bool, storage: any HostStorage
    ) throws -> [String: (frozen: DiskLayout.Disk, overlay: String)] {
        var result: [String: (frozen: DiskLayout.Disk, overlay: String)] = [:]
        let xml = XMLTree(name: "domainsnapshot")
        xml.append("name", text: snapshot)
        xml.append("description", text: "disk-only snapshot made by VMDriver")
        let disks = xml.append("disks")
        for disk in layout.disks {
            let overlay = overlayPath(disk: disk, vmName: vmName, snapshot: snapshot)
            if storage.exists(overlay) {
                throw VMDriverError(.invalidParameter, "cannot snapshot: \(overlay) already exists")
            }
            let element = disks.append("disk", attributes: [("name", disk.target), ("snapshot", "external")])
            element.append("driver", attributes: [("type", "qcow2")])
            element.append("source", attributes: [("file", overlay)])
            result[disk.target] = (disk, overlay)
        }
        var flags: DomainSnapshot.CreateFlags = [.diskOnly, .atomic]
        if !keepMetadata { flags.insert(.noMetadata) }
        // Disks the snapshot does not cover (read-only, CD-ROM) are left out explicitly.
        if let root = try? XMLTree.parse(try domain.xmlDescription()) {
            for disk in root.child("devices")?.children("disk") ?? [] {
                guard let target = disk.child("target")?.attributes["dev"], result[target] == nil else { continue }
                disks.append("disk", attributes: [("name", target), ("snapshot", "no")])
            }
        }
        _ = try domain.createSnapshot(xml: xml.serialized(), flags: flags)
        // libvirt makes the overlays of a shut-off VM with qemu-img: mode 0644, the guest's new
        // writes readable by every user. Only the owner (root, or the qemu user libvirt gave it
        // to) needs them.
        for (_, overlay) in result.values { storage.restrictToOwner(overlay) }
        return result
    }

    static func snapshotInfo(_ snapshot: DomainSnapshot, host: Host) throws -> SnapshotInfo {
        let root = try XMLTree.parse(try snapshot.xmlDescription())
        let disks = (root.child("disks")?.children("disk") ?? []).compactMap { disk -> SnapshotInfo.Disk? in
            guard disk.attributes["snapshot"] == "external", let overlay = disk.child("source")?.attributes["file"] else {
                return nil
            }
            let frozen = frozenImage(of: disk.attributes["name"] ?? "", in: root, storage: host.storage)
            return SnapshotInfo.Disk(
                target: disk.attributes["name"] ?? "", frozenImage: frozen?.path, frozenFormat: frozen?.format, overlay: overlay)
        }
        let created = root.child("creationTime").flatMap { TimeInterval($0.trimmedText) }.map { Date(timeIntervalSince1970: $0) }
        let name = try root.child("name")?.trimmedText ?? snapshot.name()
        return SnapshotInfo(
            name: name, creationTime: created,
            vmState: root.child("state")?.trimmedText, disks: disks, isCurrent: (try? snapshot.isCurrent()) ?? false)
    }

    /// The image a snapshot froze for `target`: the disk's source in the definition the snapshot
    /// kept (the overlay it made may be gone since, discarded by an earlier revert), else the
    /// overlay's backing image.
    static func frozenImage(of target: String, in snapshot: XMLTree, storage: any HostStorage) -> (path: String, format: String)?
    {
        let kept = snapshot.child("domain")?.child("devices")?.children("disk").first {
            $0.child("target")?.attributes["dev"] == target
        }
        if let path = kept?.child("source")?.attributes["file"] {
            return (path, kept?.child("driver")?.attributes["type"] ?? storage.inspect(path).format ?? "raw")
        }
        let overlay = snapshot.child("disks")?.children("disk").first { $0.attributes["name"] == target }?.child("source")?
            .attributes["file"]
        guard let overlay, let base = storage.inspect(overlay).chain?.first else { return nil }
        return (base.path, base.format ?? storage.inspect(base.path).format ?? "raw")
    }
}
