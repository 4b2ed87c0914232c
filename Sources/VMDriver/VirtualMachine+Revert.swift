import Foundation
internal import Libvirt

/// What a revert did.
public struct SnapshotRevert: Sendable, Codable, Equatable {
    /// The snapshot the VM is back at, with the new overlays it now writes to.
    public var snapshot: SnapshotInfo
    /// The overlays that held what the VM wrote after the snapshot: deleted.
    public var discarded: [String]
    /// Overlays the VM no longer uses that could not be deleted, with why.
    public var leftOver: [String]
}

extension VirtualMachine {
    /// Takes a shut-off VM back to a snapshot: each disk the snapshot froze gets a new, empty
    /// qcow2 overlay on the image it froze, the VM's disks point at them, and the snapshot becomes
    /// libvirt's current one. What the VM wrote since is discarded: the overlays it wrote to are
    /// deleted once its definition points at the new ones (never one another snapshot froze or
    /// another VM's chain uses). Until then nothing is deleted: a failure removes the new overlays
    /// and leaves the VM as it was. The VM stays shut off (a disk-only snapshot has no memory to
    /// resume).
    ///
    /// libvirt 9 cannot do this itself: `virDomainRevertToSnapshot` of an external snapshot
    /// answers "revert to external snapshot not supported yet".
    /// - Throws: code 4 if there is no such snapshot; code 5 if the VM is running, paused or
    ///   suspended to disk, if another operation holds it, or if an image the snapshot froze is
    ///   gone or a disk it froze is no longer attached. Calls `virDomainDefineXML` and
    ///   `virDomainSnapshotCreateXML` with VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE.
    public func revert(toSnapshot name: String) async throws(VMDriverError) -> SnapshotRevert {
        try await OperationClaim.check(self)
        let (host, label) = (self.host, self.label)
        return try await host.blocking("cannot revert \(label) to snapshot '\(name)'") { [domain] connection in
            let snapshot: DomainSnapshot
            do {
                snapshot = try domain.lookupSnapshot(name: name)
            } catch {
                throw VMDriverError(.invalidParameter, "\(label) has no snapshot named '\(name)'", cause: error)
            }
            let state = try Self.state(of: domain)
            if state.isActive {
                throw VMDriverError(
                    .invalidState,
                    "cannot revert \(label) to snapshot '\(name)': it is \(state); shut it down first (the snapshot holds disks only, no memory to return to)"
                )
            }
            try Self.requireSnapshottable(domain: domain, label: label)
            let plan = try RevertPlan(snapshot: snapshot, domain: domain, host: host, label: label)
            return try plan.run(domain: domain, connection: connection)
        }
    }
}

/// The disks a revert gives new overlays, and the files it then discards. Blocking throughout.
private struct RevertPlan {
    struct Disk {
        var target: String
        /// The image the snapshot froze, and its format.
        var frozen: String
        var frozenFormat: String
        /// The overlay the VM writes to now: discarded after the revert.
        var current: String
        /// The new empty overlay on `frozen`.
        var overlay: String
    }

    let snapshot: DomainSnapshot
    let snapshotXML: XMLTree
    let disks: [Disk]
    let host: Host
    let label: String

    init(snapshot: DomainSnapshot, domain: Domain, host: Host, label: String) throws {
        let name = try snapshot.name()
        let root = try XMLTree.parse(try snapshot.xmlDescription(secure: true))
        let external = (root.child("disks")?.children("disk") ?? []).filter { $0.attributes["snapshot"] == "external" }
        // The frozen images first: without them the VM's own chain cannot be read either.
        var frozenImages: [(target: String, path: String, format: String)] = []
        for element in external {
            let target = element.attributes["name"] ?? ""
            guard let frozen = VirtualMachine.frozenImage(of: target, in: root, storage: host.storage) else {
                throw VMDriverError(
                    .invalidState, "snapshot '\(name)' of \(label) does not say which image of \(target) it froze")
            }
            guard host.storage.exists(frozen.path) else {
                throw VMDriverError(
                    .invalidState,
                    "cannot revert \(label) to snapshot '\(name)': the image it froze for \(target), \(frozen.path), is gone")
            }
            frozenImages.append((target, frozen.path, frozen.format))
        }
        let layout = try DiskLayout.read(domain: domain, host: host, label: label)
        let vmName = try domain.name()
        var disks: [Disk] = []
        for (element, frozen) in zip(external, frozenImages) {
            let target = frozen.target
            guard let current = layout.disks.first(where: { $0.target == target }) else {
                throw VMDriverError(
                    .invalidState, "cannot revert \(label) to snapshot '\(name)': its disk \(target) is no longer attached")
            }
            let folder = PathName.parent(element.child("source")?.attributes["file"] ?? current.path)
            var overlay = "\(folder)/\(vmName)-\(target)-\(name).qcow2"
            var next = 2
            while host.storage.exists(overlay) {
                overlay = "\(folder)/\(vmName)-\(target)-\(name)-\(next).qcow2"
                next += 1
            }
            disks.append(
                Disk(
                    target: target, frozen: frozen.path, frozenFormat: frozen.format, current: current.path, overlay: overlay))
        }
        guard !disks.isEmpty else {
            throw VMDriverError(.invalidState, "snapshot '\(name)' of \(label) froze no disk: there is nothing to revert")
        }
        self.snapshot = snapshot
        self.snapshotXML = root
        self.disks = disks
        self.host = host
        self.label = label
    }

    func run(domain: Domain, connection: Connection) throws -> SnapshotRevert {
        let storage = host.storage
        let previous = try domain.xmlDescription([.inactive, .secure])
        var made: [String] = []
        func undo() {
            for file in made { try? storage.delete(file) }
        }
        do {
            for disk in disks {
                try storage.createOverlay(disk.overlay, base: disk.frozen, baseFormat: disk.frozenFormat) {
                    made.append(disk.overlay)
                }
            }
            // The VM's disks on the new overlays.
            let definition = try XMLTree.parse(previous)
            definition.pointDisks(at: Dictionary(uniqueKeysWithValues: disks.map { ($0.target, ($0.overlay, "qcow2")) }))
            _ = try connection.defineDomain(xml: definition.serialized())
        } catch {
            undo()
            throw error
        }
        // The snapshot now names the overlays the VM writes to after it, and is the current one.
        for element in snapshotXML.child("disks")?.children("disk") ?? [] {
            guard let disk = disks.first(where: { $0.target == element.attributes["name"] }) else { continue }
            element.child("source")?.set("file", disk.overlay)
        }
        do {
            _ = try domain.createSnapshot(xml: snapshotXML.serialized(), flags: [.redefine, .current])
        } catch {
            // Back to the definition the VM had: it never ran on the new overlays.
            do {
                _ = try connection.defineDomain(xml: previous)
            } catch let restore {
                throw VMDriverError(
                    .failed,
                    "cannot record the revert of \(label) in its snapshot (\(error)), nor restore its definition (\(restore)): its disks are on "
                        + disks.map(\.overlay).joined(separator: ", "), cause: error)
            }
            undo()
            throw error
        }
        return try discard(domain: domain, connection: connection)
    }

    /// Deletes the overlays the VM wrote to after the snapshot, unless something still needs
    /// them: another snapshot froze them, or another VM's chain uses them.
    private func discard(domain: Domain, connection: Connection) throws -> SnapshotRevert {
        var needed: Set<String> = []
        for other in (try? domain.listAllSnapshots()) ?? [] {
            guard let root = try? XMLTree.parse(try other.xmlDescription()) else { continue }
            for element in root.child("disks")?.children("disk") ?? [] {
                if let frozen = VirtualMachine.frozenImage(of: element.attributes["name"] ?? "", in: root, storage: host.storage)
                {
                    needed.insert(frozen.path)
                }
            }
        }
        let uuid = try domain.uuid()
        let others = try VirtualMachine.imagesInUse(besides: uuid, connection: connection, host: host)
        needed.formUnion(others.images)
        var discarded: [String] = []
        var leftOver: [String] = []
        for disk in disks where disk.current != disk.overlay && !needed.contains(disk.current) {
            if !others.unreadable.isEmpty {
                leftOver.append(
                    "\(disk.current) (kept: the disks of \(others.unreadable.joined(separator: ", ")) could not be read)")
                continue
            }
            do {
                try host.storage.delete(disk.current)
                discarded.append(disk.current)
            } catch {
                leftOver.append("\(disk.current) (\(error))")
            }
        }
        let info = try VirtualMachine.snapshotInfo(snapshot, host: host)
        return SnapshotRevert(snapshot: info, discarded: discarded, leftOver: leftOver)
    }
}
