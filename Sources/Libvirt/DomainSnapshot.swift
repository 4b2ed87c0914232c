internal import CLibvirt
import Foundation

/// A snapshot of a domain. Reference counted and thread-safe in libvirt, so the handle is
/// `@unchecked Sendable`; `deinit` frees the reference.
public final class DomainSnapshot: @unchecked Sendable {
    let pointer: virDomainSnapshotPtr
    public let domain: Domain

    init(owning pointer: virDomainSnapshotPtr, domain: Domain) {
        self.pointer = pointer
        self.domain = domain
    }

    deinit { virDomainSnapshotFree(pointer) }

    /// The snapshot's name. Calls `virDomainSnapshotGetName`.
    public func name() throws(LibvirtError) -> String {
        String(cString: try call("virDomainSnapshotGetName") { virDomainSnapshotGetName(pointer) })
    }

    /// The snapshot XML; `secure` includes security-sensitive parts (what a redefine needs).
    /// Calls `virDomainSnapshotGetXMLDesc`.
    public func xmlDescription(secure: Bool = false) throws(LibvirtError) -> String {
        let flags = secure ? UInt32(VIR_DOMAIN_SNAPSHOT_XML_SECURE.rawValue) : 0
        return takeString(try call("virDomainSnapshotGetXMLDesc") { virDomainSnapshotGetXMLDesc(pointer, flags) })
    }

    /// Whether this is the domain's current snapshot. Calls `virDomainSnapshotIsCurrent`.
    public func isCurrent() throws(LibvirtError) -> Bool {
        try call("virDomainSnapshotIsCurrent") { virDomainSnapshotIsCurrent(pointer, 0) } == 1
    }

    /// Deletes the snapshot. Calls `virDomainSnapshotDelete`.
    public func delete(_ flags: DeleteFlags = []) throws(LibvirtError) {
        try call("virDomainSnapshotDelete") { virDomainSnapshotDelete(pointer, flags.rawValue) }
    }

    /// `virDomainSnapshotDeleteFlags`.
    public struct DeleteFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN
        public static let children = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY: forget the snapshot, keep its files.
        public static let metadataOnly = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY
        public static let childrenOnly = Self(rawValue: 1 << 2)
    }

    /// `virDomainSnapshotCreateFlags`.
    public struct CreateFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        public static let redefine = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
        public static let current = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
        public static let noMetadata = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_HALT
        public static let halt = Self(rawValue: 1 << 3)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY: disks only, no memory state.
        public static let diskOnly = Self(rawValue: 1 << 4)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
        public static let reuseExternal = Self(rawValue: 1 << 5)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
        public static let quiesce = Self(rawValue: 1 << 6)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC: all disks or none.
        public static let atomic = Self(rawValue: 1 << 7)
        /// VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
        public static let live = Self(rawValue: 1 << 8)
    }
}

extension Domain {
    /// Creates a snapshot from snapshot XML. Calls `virDomainSnapshotCreateXML`.
    public func createSnapshot(xml: String, flags: DomainSnapshot.CreateFlags = []) throws(LibvirtError) -> DomainSnapshot {
        DomainSnapshot(
            owning: try call("virDomainSnapshotCreateXML") { virDomainSnapshotCreateXML(pointer, xml, flags.rawValue) },
            domain: self)
    }

    /// The domain's snapshots; `topological`: every parent before its children (what
    /// redefining them needs). Calls `virDomainListAllSnapshots`.
    public func listAllSnapshots(topological: Bool = false) throws(LibvirtError) -> [DomainSnapshot] {
        var list: UnsafeMutablePointer<virDomainSnapshotPtr?>? = nil
        let flags = topological ? UInt32(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL.rawValue) : 0
        let count = try call("virDomainListAllSnapshots") { virDomainListAllSnapshots(pointer, &list, flags) }
        guard let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map { DomainSnapshot(owning: $0, domain: self) } }
    }

    /// The snapshot named `name`. Calls `virDomainSnapshotLookupByName`.
    public func lookupSnapshot(name: String) throws(LibvirtError) -> DomainSnapshot {
        DomainSnapshot(
            owning: try call("virDomainSnapshotLookupByName") { virDomainSnapshotLookupByName(pointer, name, 0) },
            domain: self)
    }
}
