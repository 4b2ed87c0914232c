import Foundation
internal import Libvirt
import Synchronization

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

    /// The XML of a directory pool over `folder`.
    static func directoryPoolXML(for folder: String, name: String) -> String {
        let xml = XMLTree(name: "pool", attributes: ["type": "dir"])
        xml.append("name", text: "\(name)-\(UUID().uuidString.prefix(8).lowercased())")
        xml.append("target").append("path", text: folder)
        return xml.serialized()
    }

    /// Starts a transient directory pool over `folder`, so volumes can be made, found and
    /// deleted in it; `build` makes the folder (with its parents) when it is not there. The
    /// caller destroys it (the folder and its files stay). Blocking.
    static func transientPool(
        for folder: String, build: Bool, name: String = "vmdriver-transient", connection: Connection
    ) throws -> StoragePool {
        let xml = directoryPoolXML(for: folder, name: name)
        // A pool over a folder that exists starts without a build.
        do {
            return try connection.createStoragePool(xml: xml)
        } catch {
            // Without a build, that refusal is the answer (asked once, not again for its error).
            guard build else { throw error }
        }
        return try connection.createStoragePool(xml: xml, build: true)
    }

    /// Creates a qcow2 overlay volume named after `overlay` in `pool`, backed by `base`
    /// (libvirt runs qemu-img on the pool's host). Blocking.
    static func createOverlay(
        _ overlay: String, base: String, baseFormat: String, pool: StoragePool, connection: Connection
    ) throws {
        // A refresh is refused while another volume is being built in the pool (concurrent
        // clones): the base is looked up by path, refreshing only if needed (ImageInspector).
        try? pool.refresh()
        let capacity: UInt64
        do {
            capacity = try ImageInspector.volume(at: base, connection: connection).info().capacity
        } catch {
            throw VMDriverError(
                .notSupported,
                "cannot size an overlay on \(base): no storage pool on the host covers it (define a directory pool for its folder)",
                cause: error)
        }
        _ = try createVolume(
            named: PathName.last(overlay), capacity: capacity, format: "qcow2",
            backing: (base, baseFormat), in: pool)
    }

    /// Creates a volume in `pool`: sparse (without an allocation libvirt would take the
    /// capacity and preallocate), mode 0600, over a backing image if given. Blocking.
    static func createVolume(
        named name: String, capacity: UInt64, format: String, backing: (path: String, format: String)? = nil,
        in pool: StoragePool
    ) throws -> StorageVolume {
        let volume = XMLTree(name: "volume")
        volume.append("name", text: name)
        volume.append("capacity", attributes: [("unit", "bytes")], text: String(capacity))
        volume.append("allocation", attributes: [("unit", "bytes")], text: "0")
        let target = volume.append("target")
        target.append("format", attributes: [("type", format)])
        target.append("permissions").append("mode", text: "0600")
        if let backing {
            let store = volume.append("backingStore")
            store.append("path", text: backing.path)
            store.append("format", attributes: [("type", backing.format)])
        }
        return try pool.createVolume(xml: volume.serialized())
    }

    /// Whether `directory` is the same storage on both hosts: a probe file made through the
    /// source's pool for it is looked up through the target's. nil when either host has no
    /// pool covering the folder (then it cannot be told). Blocking.
    static func sameStorage(_ directory: String, source: Connection, target: Connection) -> Bool? {
        guard let sourcePool = try? covering(directory, connection: source),
            let targetPool = try? covering(directory, connection: target)
        else { return nil }
        let name = ".vmdriver-probe-\(UUID().uuidString.lowercased())"
        guard let probe = try? createVolume(named: name, capacity: 0, format: "raw", in: sourcePool) else { return nil }
        defer { try? probe.delete() }
        try? targetPool.refresh()
        let seen = (try? targetPool.lookupVolume(name: name)) != nil
        return seen
    }
}

/// Transient directory pools over folders no pool covers, made for one step that asks a host's
/// storage API about them (the migration's checks: the sharing probe, the target's images),
/// then taken away again (the folders and their files stay). Blocking, on the pool.
final class TransientPools: Sendable {
    private let made = Mutex<[StoragePool]>([])

    /// Whether a pool covers `folder` on the connection's host now: one of the host's own, or
    /// one made here (only over a folder that exists: nothing is created).
    @discardableResult
    func cover(_ folder: String, connection: Connection) -> Bool {
        if (try? StoragePools.covering(folder, connection: connection)) != nil { return true }
        guard
            let pool = try? StoragePools.transientPool(
                for: folder, build: false, name: "vmdriver-check", connection: connection)
        else { return false }
        made.withLock { $0.append(pool) }
        return true
    }

    /// Takes away every pool made here.
    func destroyAll() {
        let pools = made.withLock { made in
            defer { made = [] }
            return made
        }
        for pool in pools { try? pool.destroy() }
    }
}
