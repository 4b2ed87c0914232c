internal import CLibvirt

extension Domain {
    /// `virDomainMetadataType`: which part of the definition a metadata call reads or writes.
    public enum MetadataType: Int32, Sendable {
        /// VIR_DOMAIN_METADATA_DESCRIPTION: `<description>`.
        case description = 0
        /// VIR_DOMAIN_METADATA_TITLE: `<title>`.
        case title = 1
        /// VIR_DOMAIN_METADATA_ELEMENT: one application's element under `<metadata>`, by namespace.
        case element = 2
    }

    /// `virDomainModificationImpact`: the running domain, its persistent definition, or both.
    /// The empty set is libvirt's "current": live if the domain runs, else its definition.
    public struct ModificationImpact: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_AFFECT_LIVE: the running domain (gone when it stops).
        public static let live = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_AFFECT_CONFIG: the persistent definition (stays across restarts).
        public static let config = Self(rawValue: 1 << 1)
    }

    /// Sets, or with nil removes, the domain's metadata. For `.element`, `metadata` is one XML
    /// element, stored under `<metadata>` in the namespace `uri` with the prefix `key`; an element
    /// already there in that namespace is replaced. Calls `virDomainSetMetadata`.
    public func setMetadata(
        _ type: MetadataType, _ metadata: String?, key: String? = nil, uri: String? = nil,
        _ impact: ModificationImpact = []
    ) throws(LibvirtError) {
        try call("virDomainSetMetadata") {
            virDomainSetMetadata(pointer, type.rawValue, metadata, key, uri, impact.rawValue)
        }
    }

    /// The domain's metadata: for `.element`, the element in the namespace `uri` (as XML, with its
    /// namespace declared on it). nil when there is none (libvirt's VIR_ERR_NO_DOMAIN_METADATA).
    /// Give `.live` or `.config` alone, not both. Calls `virDomainGetMetadata`.
    public func metadata(
        _ type: MetadataType, uri: String? = nil, _ impact: ModificationImpact = []
    ) throws(LibvirtError) -> String? {
        do {
            return takeString(
                try call("virDomainGetMetadata") { virDomainGetMetadata(pointer, type.rawValue, uri, impact.rawValue) })
        } catch  where error.code == .noDomainMetadata {
            return nil
        }
    }
}
