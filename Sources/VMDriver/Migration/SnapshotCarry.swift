import Foundation
internal import Libvirt

/// A VM's snapshots carried across a migration. libvirt refuses to migrate a domain that has
/// snapshot metadata ("cannot migrate domain with 1 snapshots"), VMDriver's own linked-clone
/// freeze included: so each snapshot's XML is read, its metadata (never its images) taken off
/// the source just before the move, and the snapshots are redefined on the target after it
/// (`VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE`, parents first, the current one current). If the move
/// fails or is cancelled they are redefined on the source instead, exactly as they were.
struct SnapshotCarry: Sendable {
    struct Snapshot: Sendable, Equatable {
        var name: String
        /// The XML libvirt gave, security-sensitive parts included: what a redefine takes.
        var xml: String
        var isCurrent: Bool
        /// The disk images the snapshot refers to: the overlays it made and the images it froze.
        var images: [String]
        /// The snapshot lives inside an image (qcow2 internal snapshot, or memory state).
        var isInternal: Bool
    }

    /// Parents before children.
    let snapshots: [Snapshot]

    var isEmpty: Bool { snapshots.isEmpty }
    var names: [String] { snapshots.map(\.name) }

    /// Reads the domain's snapshots, parents first. Blocking.
    static func read(_ domain: Domain) throws -> SnapshotCarry {
        let snapshots = try domain.listAllSnapshots(topological: true).map { snapshot in
            let xml = try snapshot.xmlDescription(secure: true)
            let (images, isInternal) = Self.images(in: xml)
            return Snapshot(
                name: try snapshot.name(), xml: xml, isCurrent: (try? snapshot.isCurrent()) ?? false, images: images,
                isInternal: isInternal)
        }
        return SnapshotCarry(snapshots: snapshots)
    }

    /// The images a snapshot's XML names (its disks' sources, and the sources of the domain
    /// definition it keeps), and whether any part of it is internal.
    static func images(in xml: String) -> (images: [String], isInternal: Bool) {
        guard let root = try? XMLTree.parse(xml) else { return ([], false) }
        var images: [String] = []
        var isInternal = root.child("memory")?.attributes["snapshot"] == "internal"
        for disk in root.child("disks")?.children("disk") ?? [] {
            if disk.attributes["snapshot"] == "internal" { isInternal = true }
            if let file = disk.child("source")?.attributes["file"] { images.append(file) }
        }
        for disk in root.child("domain")?.child("devices")?.children("disk") ?? [] where disk.attributes["device"] != "cdrom" {
            if let file = disk.child("source")?.attributes["file"] { images.append(file) }
        }
        var seen = Set<String>()
        return (images.filter { seen.insert($0).inserted }, isInternal)
    }

    /// Forgets the snapshots on `domain`, children first; their images stay. Blocking. If one
    /// cannot be taken off, those already taken off are put back and the error is thrown.
    func takeOff(_ domain: Domain) throws {
        var taken: [Snapshot] = []
        for snapshot in snapshots.reversed() {
            do {
                try domain.lookupSnapshot(name: snapshot.name).delete([.metadataOnly])
                taken.append(snapshot)
            } catch {
                _ = SnapshotCarry(snapshots: taken.reversed()).redefine(on: domain)
                throw error
            }
        }
    }

    /// Defines the snapshots on `domain` again, parents first, the current one current.
    /// Blocking. Returns a line for each one that could not be defined.
    func redefine(on domain: Domain) -> [String] {
        var failed: [String] = []
        for snapshot in snapshots {
            var flags: DomainSnapshot.CreateFlags = [.redefine]
            if snapshot.isCurrent { flags.insert(.current) }
            do {
                _ = try domain.createSnapshot(xml: snapshot.xml, flags: flags)
            } catch {
                failed.append("snapshot '\(snapshot.name)': \(error.message)")
            }
        }
        return failed
    }
}
