import Foundation
internal import Libvirt

/// The files of this machine, for a host reached without a host name (`qemu:///system`,
/// `test:///default`): read and written directly, images made with `qemu-img` and copied with
/// `cp` (`DiskCopier`), each new one reserved mode 0600 first (`LocalImages.reserve`). Where a
/// storage pool covers a folder, images are made and deleted through it, so the pool stays true.
struct LocalStorage: HostStorage {
    let connection: Connection

    var cloneTypes: [Capabilities.CloneType: Capabilities.Support] {
        let qemuImg = Subprocess.which("qemu-img")
        return [
            .full: .available("disks copied with reflink, copy_file_range or qemu-img convert"),
            .linked: .when(
                qemuImg != nil, "qcow2 overlays made with \(qemuImg ?? "qemu-img")",
                else: "linked clones need qcow2 overlays and qemu-img is not installed (apt-get install qemu-utils)"),
        ]
    }

    var unreadableImageCode: ReturnCode { .failed }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    func kind(of path: String) -> PathKind {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return .missing }
        return isDirectory.boolValue ? .directory : .other
    }

    func inspect(_ path: String) -> ImageInspector.Result { ImageInspector.local(path: path, connection: connection) }

    func allocatedBytes(_ path: String) -> UInt64 { DiskCopier.allocatedBytes(path) }

    func overlayIsEmpty(_ path: String) -> Bool { LocalImages.overlayIsEmpty(path) }

    func makeFolder(_ path: String) throws(VMDriverError) -> Bool {
        guard !exists(path) else { return false }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw VMDriverError(.invalidParameter, "cannot create folder \(path): \(error.localizedDescription)")
        }
        return true
    }

    func createOverlay(_ overlay: String, base: String, baseFormat: String, created: () -> Void) throws {
        // libvirt's storage API where a pool covers the folder (mode 0600), else qemu-img into a
        // file reserved 0600.
        if let pool = try StoragePools.covering(PathName.parent(overlay), connection: connection) {
            try StoragePools.createOverlay(overlay, base: base, baseFormat: baseFormat, pool: pool, connection: connection)
            created()
        } else {
            // Reserved before it is recorded: a file someone else made meanwhile is refused, not
            // removed by the rollback.
            try LocalImages.reserve(overlay)
            created()
            try LocalImages.createOverlay(overlay, base: base, baseFormat: baseFormat)
        }
    }

    func copyImage(
        _ plan: DiskCopier.Plan, handle: Subprocess.Handle, created: () -> Void,
        progress: @escaping @Sendable (UInt64) -> Void
    ) throws {
        try LocalImages.reserve(plan.target)
        created()
        try DiskCopier.copy(plan, handle: handle, progress: progress)
    }

    func flatten(_ path: String, format: String) throws { try LocalImages.flattenInPlace(path, format: format) }

    func restrictToOwner(_ path: String) { _ = chmod(path, 0o600) }

    func write(_ data: Data, to path: String, created: () -> Void) throws {
        try LocalImages.reserve(path)
        created()
        try data.write(to: URL(fileURLWithPath: path))
    }

    func delete(_ path: String) throws {
        if let volume = try? connection.lookupStorageVolume(path: path) {
            try volume.delete()
        } else if kind(of: path) == .directory {
            // rmdir, not a recursive removal: a folder still holding files is not VMDriver's to empty.
            guard rmdir(path) == 0 else {
                throw VMDriverError(.failed, "cannot remove folder \(path): \(String(cString: strerror(errno)))")
            }
        } else if exists(path) {
            try FileManager.default.removeItem(atPath: path)
        }
    }

    func reader(_ path: String) throws -> (ByteReader, StorageVolume?) {
        if let volume = try? ImageInspector.volume(at: path, connection: connection) {
            return (try VolumeReader(volume), volume)
        }
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw VMDriverError(.failed, "cannot read \(path): no such file, or not readable")
        }
        return (FileReader(file), nil)
    }
}
