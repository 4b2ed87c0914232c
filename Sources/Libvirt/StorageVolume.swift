internal import CLibvirt
import Foundation

/// A volume in a storage pool. Reference counted and thread-safe in libvirt, so the handle is
/// `@unchecked Sendable`; `deinit` frees the reference.
public final class StorageVolume: @unchecked Sendable {
    let pointer: virStorageVolPtr
    public let connection: Connection

    init(owning pointer: virStorageVolPtr, connection: Connection) {
        self.pointer = pointer
        self.connection = connection
    }

    deinit { virStorageVolFree(pointer) }

    /// The volume's path on its host. Calls `virStorageVolGetPath`.
    public func path() throws(LibvirtError) -> String {
        takeString(try call("virStorageVolGetPath") { virStorageVolGetPath(pointer) })
    }

    /// The volume XML, with its format and backing store as libvirt read them from the image.
    /// Calls `virStorageVolGetXMLDesc`.
    public func xmlDescription() throws(LibvirtError) -> String {
        takeString(try call("virStorageVolGetXMLDesc") { virStorageVolGetXMLDesc(pointer, 0) })
    }

    /// Capacity and allocation in bytes. Calls `virStorageVolGetInfo`.
    public func info() throws(LibvirtError) -> (capacity: UInt64, allocation: UInt64) {
        var info = virStorageVolInfo()
        try call("virStorageVolGetInfo") { virStorageVolGetInfo(pointer, &info) }
        return (UInt64(info.capacity), UInt64(info.allocation))
    }

    /// Deletes the volume's storage. Calls `virStorageVolDelete`.
    public func delete() throws(LibvirtError) {
        try call("virStorageVolDelete") { virStorageVolDelete(pointer, 0) }
    }

    /// Starts sending the volume's bytes (the file as it is, not the guest's view of it) into
    /// `stream`; `sparse` sends holes as holes. Calls `virStorageVolDownload`.
    public func download(into stream: Stream, offset: UInt64 = 0, length: UInt64 = 0, sparse: Bool = false)
        throws(LibvirtError)
    {
        let flags = sparse ? UInt32(VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM.rawValue) : 0
        try call("virStorageVolDownload") { virStorageVolDownload(pointer, stream.pointer, offset, length, flags) }
    }

    /// Starts receiving the volume's bytes from `stream`; `sparse` accepts holes. Calls
    /// `virStorageVolUpload`.
    public func upload(from stream: Stream, offset: UInt64 = 0, length: UInt64 = 0, sparse: Bool = false)
        throws(LibvirtError)
    {
        let flags = sparse ? UInt32(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM.rawValue) : 0
        try call("virStorageVolUpload") { virStorageVolUpload(pointer, stream.pointer, offset, length, flags) }
    }
}
