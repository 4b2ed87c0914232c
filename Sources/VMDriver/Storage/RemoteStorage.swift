import Foundation
internal import Libvirt
import Synchronization

/// The files of another machine, reached only through libvirt's storage API on the host's own
/// daemon: volumes of its storage pools, copies made there (`virStorageVolCreateXMLFrom`), bytes
/// through streams. A folder no pool covers gets a transient directory pool
/// (`virStoragePoolCreateXML`) for as long as an operation needs it. Nothing here touches a
/// file of this machine: a path means the host's path.
final class RemoteStorage: HostStorage {
    let connection: Connection

    /// Transient pools this process made, by folder, with how many operations use each: one
    /// operation's pool is not destroyed under another's feet (libvirt refuses a second pool
    /// over the same folder).
    private let transient = Mutex<[String: (pool: StoragePool, users: Int)]>([:])

    init(connection: Connection) { self.connection = connection }

    var cloneTypes: [Capabilities.CloneType: Capabilities.Support] {
        [
            .full: .available("disks copied on the host by libvirt (virStorageVolCreateXMLFrom)"),
            .linked: .available("qcow2 overlays made on the host by libvirt's storage-volume API"),
        ]
    }

    var unreadableImageCode: ReturnCode { .notSupported }

    func exists(_ path: String) -> Bool { kind(of: path) != .missing }

    func kind(of path: String) -> PathKind {
        let path = (path as NSString).standardizingPath
        if (try? StoragePools.covering(path, connection: connection)) != nil { return .directory }
        // A directory pool lists its subfolders as volumes of type 'dir'.
        if let type = try? withVolume(path, { try XMLTree.parse(try $0.xmlDescription()).attributes["type"] ?? "file" }) {
            return type == "dir" ? .directory : .other
        }
        // A folder no pool covers: a transient pool over it starts only if it is a directory.
        return (try? withPool(path) { _ in }) != nil ? .directory : .missing
    }

    func inspect(_ path: String) -> ImageInspector.Result {
        ImageInspector.viaStorageAPI(path: path) { image in try self.withVolume(image) { try $0.xmlDescription() } }
    }

    func allocatedBytes(_ path: String) -> UInt64 { (try? withVolume(path) { try $0.info().allocation }) ?? 0 }

    /// The header would have to be read through a stream; "not known to be empty" only costs a
    /// new freeze.
    func overlayIsEmpty(_ path: String) -> Bool { false }

    func makeFolder(_ path: String) throws(VMDriverError) -> Bool {
        guard kind(of: path) == .missing else { return false }
        do {
            // The build makes the folder, with its parents; the pool goes, the folder stays.
            let pool = try StoragePools.transientPool(for: path, build: true, connection: connection)
            try? pool.destroy()
        } catch {
            throw VMDriverError(.invalidParameter, "cannot create folder \(path) on the host: \(error)", cause: error)
        }
        return true
    }

    func createOverlay(_ overlay: String, base: String, baseFormat: String, created: () -> Void) throws {
        let capacity = try withVolume(base) { try $0.info().capacity }
        _ = try withPool(PathName.parent(overlay)) { pool in
            try StoragePools.createVolume(
                named: PathName.last(overlay), capacity: capacity, format: "qcow2", backing: (base, baseFormat), in: pool)
        }
        // libvirt removes a volume it failed to make: only a made one is VMDriver's.
        created()
    }

    func copyImage(
        _ plan: DiskCopier.Plan, handle: Subprocess.Handle, created: () -> Void,
        progress: @escaping @Sendable (UInt64) -> Void
    ) throws {
        // libvirt copies on the host: qemu-img convert for qcow2 (and for any chain, which it
        // flattens), a hole-keeping copy for raw. One call, so no progress until it returns.
        try copy(plan.source, to: plan.target, format: plan.format)
        created()
        progress(plan.bytes)
    }

    func flatten(_ path: String, format: String) throws {
        // No libvirt call rebases a volume in place: the flattened copy is made beside it, then
        // copied back under the original name (the domain's definition keeps its path).
        let folder = PathName.parent(path)
        let temporary = "\(folder)/.\(PathName.last(path)).vmdriver-flat-\(UUID().uuidString.prefix(8).lowercased())"
        try copy(path, to: temporary, format: format)
        do {
            try withVolume(path) { try $0.delete() }
            try copy(temporary, to: path, format: format)
        } catch {
            throw VMDriverError(
                .failed, "cannot put the standalone copy of \(path) in its place: \(error); it is at \(temporary) on the host",
                cause: error)
        }
        try withVolume(temporary) { try $0.delete() }
    }

    /// libvirt has no call to change a file's mode; new volumes VMDriver makes are 0600 already.
    func restrictToOwner(_ path: String) {}

    func write(_ data: Data, to path: String, created: () -> Void) throws {
        try withPool(PathName.parent(path)) { pool in
            let volume = try StoragePools.createVolume(named: PathName.last(path), capacity: 0, format: "raw", in: pool)
            created()
            let upload = try Libvirt.Stream(connection: connection)
            try volume.upload(from: upload)
            do {
                try data.withUnsafeBytes { try upload.write($0) }
                try upload.finish()
            } catch {
                upload.abort()
                throw error
            }
        }
    }

    func delete(_ path: String) throws {
        if (try? withVolume(path) { _ in }) != nil {
            try withVolume(path) { try $0.delete() }
            return
        }
        guard kind(of: path) == .directory else { return }
        // An inactive persistent pool over the folder can remove it (virStoragePoolDelete
        // refuses active pools, and a transient one is gone once stopped).
        let pool = try connection.defineStoragePool(xml: StoragePools.directoryPoolXML(for: path, name: "vmdriver-rm"))
        defer { try? pool.undefine() }
        try pool.delete()
    }

    func reader(_ path: String) throws -> (ByteReader, StorageVolume?) {
        // The stream must outlive the call, so only a pool that stays can give the volume.
        guard let volume = try? ImageInspector.volume(at: path, connection: connection) else {
            throw VMDriverError(.notSupported, "cannot read \(path) on the host: define a storage pool for its folder there")
        }
        return (try VolumeReader(volume), volume)
    }

    // MARK: Pools

    /// Copies the volume at `source` into a new volume at `target` on the host.
    private func copy(_ source: String, to target: String, format: String) throws {
        try withVolume(source) { original in
            try withPool(PathName.parent(target)) { pool in
                let xml = XMLTree(name: "volume")
                xml.append("name", text: PathName.last(target))
                // 0: libvirt takes the source's capacity; no allocation: sparse.
                xml.append("capacity", attributes: [("unit", "bytes")], text: "0")
                xml.append("allocation", attributes: [("unit", "bytes")], text: "0")
                let element = xml.append("target")
                element.append("format", attributes: [("type", format)])
                // Without it libvirt asks qemu-img for compat=0.10, an old qcow2 without
                // zero clusters or lazy refcounts.
                if format == "qcow2" { element.append("compat", text: "1.1") }
                element.append("permissions").append("mode", text: "0600")
                _ = try pool.createVolume(xml: xml.serialized(), from: original)
            }
        }
    }

    /// Runs `body` with the volume at `path`: through the pool covering its folder, or a
    /// transient pool made over the folder for the time of the call.
    func withVolume<T>(_ path: String, _ body: (StorageVolume) throws -> T) throws -> T {
        if let volume = try? ImageInspector.volume(at: path, connection: connection) { return try body(volume) }
        return try withPool(PathName.parent(path)) { pool in
            try body(try pool.lookupVolume(name: PathName.last(path)))
        }
    }

    /// Runs `body` with a pool whose target is `folder`: the host's own, else a transient one
    /// (the folder must exist), destroyed when the last operation using it ends.
    func withPool<T>(_ folder: String, _ body: (StoragePool) throws -> T) throws -> T {
        let folder = (folder as NSString).standardizingPath
        if let pool = try StoragePools.covering(folder, connection: connection), transientUsers(folder) == nil {
            return try body(pool)
        }
        let pool = try acquireTransient(folder)
        defer { releaseTransient(folder) }
        return try body(pool)
    }

    private func transientUsers(_ folder: String) -> Int? { transient.withLock { $0[folder]?.users } }

    private func acquireTransient(_ folder: String) throws -> StoragePool {
        // Made under the lock: two operations on one folder must not both try.
        try transient.withLock { pools throws -> StoragePool in
            if let entry = pools[folder] {
                pools[folder] = (entry.pool, entry.users + 1)
                return entry.pool
            }
            let pool = try StoragePools.transientPool(for: folder, build: false, connection: connection)
            pools[folder] = (pool, 1)
            return pool
        }
    }

    private func releaseTransient(_ folder: String) {
        let done: StoragePool? = transient.withLock { pools in
            guard let entry = pools[folder] else { return nil }
            if entry.users > 1 {
                pools[folder] = (entry.pool, entry.users - 1)
                return nil
            }
            pools[folder] = nil
            return entry.pool
        }
        try? done?.destroy()
    }
}
