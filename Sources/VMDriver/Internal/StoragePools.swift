import Foundation
import Libvirt

/// Disk images through libvirt's storage API, which works the same on a local and a remote host.
enum StoragePools {
    /// The active directory-like pool whose target is `directory`, if any. Blocking.
    static func covering(_ directory: String, connection: Connection) throws -> StoragePool? {
        let wanted = (directory as NSString).standardizingPath
        for pool in try connection.listAllStoragePools() where (try? pool.isActive()) == true {
            guard let root = try? XMLTree.parse(try pool.xmlDescription()),
                let path = root.child("target")?.child("path")?.trimmedText
            else { continue }
            if (path as NSString).standardizingPath == wanted { return pool }
        }
        return nil
    }

    /// Whether a file exists on the connection's host, asked through its storage pools. Blocking.
    static func exists(_ path: String, connection: Connection) -> Bool {
        (try? connection.lookupStorageVolume(path: path)) != nil
    }

    /// Deletes a file on the connection's host through its storage pools. Blocking.
    static func delete(_ path: String, connection: Connection) throws {
        try connection.lookupStorageVolume(path: path).delete()
    }

    /// Creates a qcow2 overlay volume named after `overlay` in `pool`, backed by `base`
    /// (libvirt runs qemu-img on the pool's host). Blocking.
    static func createOverlay(
        _ overlay: String, base: String, baseFormat: String, pool: StoragePool, connection: Connection
    ) throws {
        try pool.refresh()
        let capacity: UInt64
        do {
            capacity = try connection.lookupStorageVolume(path: base).info().capacity
        } catch {
            throw VMDriverError(
                .notSupported,
                "cannot size an overlay on \(base): no storage pool on the host covers it (define a directory pool for its folder)",
                cause: error)
        }
        let volume = XMLTree(name: "volume")
        volume.append("name", text: (overlay as NSString).lastPathComponent)
        volume.append("capacity", attributes: [("unit", "bytes")], text: String(capacity))
        let target = volume.append("target")
        target.append("format", attributes: [("type", "qcow2")])
        target.append("permissions").append("mode", text: "0600")
        let backing = volume.append("backingStore")
        backing.append("path", text: base)
        backing.append("format", attributes: [("type", baseFormat)])
        _ = try pool.createVolume(xml: volume.serialized())
    }
}
