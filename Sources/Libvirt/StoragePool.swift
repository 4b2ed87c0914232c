internal import CLibvirt
import Foundation

/// A libvirt storage pool (a directory, LVM volume group …). Reference counted and thread-safe
/// in libvirt, so the handle is `@unchecked Sendable`; `deinit` frees the reference.
public final class StoragePool: @unchecked Sendable {
    let pointer: virStoragePoolPtr
    public let connection: Connection

    init(owning pointer: virStoragePoolPtr, connection: Connection) {
        self.pointer = pointer
        self.connection = connection
    }

    deinit { virStoragePoolFree(pointer) }

    /// The pool's name. Calls `virStoragePoolGetName`.
    public func name() throws(LibvirtError) -> String {
        String(cString: try call("virStoragePoolGetName") { virStoragePoolGetName(pointer) })
    }

    /// The pool XML. Calls `virStoragePoolGetXMLDesc`.
    public func xmlDescription() throws(LibvirtError) -> String {
        takeString(try call("virStoragePoolGetXMLDesc") { virStoragePoolGetXMLDesc(pointer, 0) })
    }

    /// Whether the pool is active. Calls `virStoragePoolIsActive`.
    public func isActive() throws(LibvirtError) -> Bool {
        try call("virStoragePoolIsActive") { virStoragePoolIsActive(pointer) } == 1
    }

    /// Rescans the pool's volumes. Calls `virStoragePoolRefresh`.
    public func refresh() throws(LibvirtError) {
        try call("virStoragePoolRefresh") { virStoragePoolRefresh(pointer, 0) }
    }

    /// Creates a volume from XML. Calls `virStorageVolCreateXML`.
    public func createVolume(xml: String) throws(LibvirtError) -> StorageVolume {
        StorageVolume(
            owning: try call("virStorageVolCreateXML") { virStorageVolCreateXML(pointer, xml, 0) },
            connection: connection)
    }

    /// Creates a volume from XML with the contents of `source` (a volume of any pool on the same
    /// host), copied by libvirt on that host: a format change or a backing chain goes through
    /// `qemu-img convert` (flattened), a raw copy keeps holes. Calls `virStorageVolCreateXMLFrom`.
    public func createVolume(xml: String, from source: StorageVolume) throws(LibvirtError) -> StorageVolume {
        StorageVolume(
            owning: try call("virStorageVolCreateXMLFrom") { virStorageVolCreateXMLFrom(pointer, xml, source.pointer, 0) },
            connection: connection)
    }

    /// The volume named `name` in this pool. Calls `virStorageVolLookupByName`.
    public func lookupVolume(name: String) throws(LibvirtError) -> StorageVolume {
        StorageVolume(
            owning: try call("virStorageVolLookupByName") { virStorageVolLookupByName(pointer, name) },
            connection: connection)
    }

    /// Stops a pool; a transient one disappears (its files stay). Calls `virStoragePoolDestroy`.
    public func destroy() throws(LibvirtError) {
        try call("virStoragePoolDestroy") { virStoragePoolDestroy(pointer) }
    }

    /// Forgets an inactive persistent pool (its storage stays). Calls `virStoragePoolUndefine`.
    public func undefine() throws(LibvirtError) {
        try call("virStoragePoolUndefine") { virStoragePoolUndefine(pointer) }
    }

    /// Removes the pool's storage (for a directory pool: the directory, if empty). libvirt does
    /// this only for an inactive pool. Calls `virStoragePoolDelete`.
    public func delete() throws(LibvirtError) {
        try call("virStoragePoolDelete") { virStoragePoolDelete(pointer, 0) }
    }
}
