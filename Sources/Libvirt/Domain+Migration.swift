internal import CLibvirt

extension Domain {
    /// `virDomainMigrateFlags`.
    public struct MigrateFlags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_MIGRATE_LIVE: the guest keeps running during the transfer.
        public static let live = Self(rawValue: 1 << 0)
        /// VIR_MIGRATE_PEER2PEER: the source libvirtd talks to the destination's itself.
        public static let peerToPeer = Self(rawValue: 1 << 1)
        /// VIR_MIGRATE_TUNNELLED: data through the libvirt connection.
        public static let tunnelled = Self(rawValue: 1 << 2)
        /// VIR_MIGRATE_PERSIST_DEST: define the domain on the destination.
        public static let persistDestination = Self(rawValue: 1 << 3)
        /// VIR_MIGRATE_UNDEFINE_SOURCE: undefine it on the source on success.
        public static let undefineSource = Self(rawValue: 1 << 4)
        /// VIR_MIGRATE_PAUSED: leave it paused on the destination.
        public static let paused = Self(rawValue: 1 << 5)
        /// VIR_MIGRATE_NON_SHARED_DISK: copy whole disks.
        public static let nonSharedDisk = Self(rawValue: 1 << 6)
        /// VIR_MIGRATE_NON_SHARED_INC: copy only the top image of each disk.
        public static let nonSharedIncremental = Self(rawValue: 1 << 7)
        /// VIR_MIGRATE_CHANGE_PROTECTION
        public static let changeProtection = Self(rawValue: 1 << 8)
        /// VIR_MIGRATE_UNSAFE: skip libvirt's safety checks (storage caching).
        public static let unsafe = Self(rawValue: 1 << 9)
        /// VIR_MIGRATE_OFFLINE: move only the definition of a shut-off domain.
        public static let offline = Self(rawValue: 1 << 10)
        /// VIR_MIGRATE_COMPRESSED
        public static let compressed = Self(rawValue: 1 << 11)
        /// VIR_MIGRATE_ABORT_ON_ERROR
        public static let abortOnError = Self(rawValue: 1 << 12)
        /// VIR_MIGRATE_AUTO_CONVERGE: throttle the guest's vCPUs if it dirties memory too fast.
        public static let autoConverge = Self(rawValue: 1 << 13)
        /// VIR_MIGRATE_POSTCOPY: allow switching to post-copy.
        public static let postcopy = Self(rawValue: 1 << 15)
        /// VIR_MIGRATE_TLS: QEMU's native TLS for the migration data.
        public static let tls = Self(rawValue: 1 << 16)
        /// VIR_MIGRATE_PARALLEL: several connections (multifd).
        public static let parallel = Self(rawValue: 1 << 17)
    }

    /// The typed parameters of `virDomainMigrateToURI3`.
    public struct MigrationParameters: TypedParameterRecord {
        /// VIR_MIGRATE_PARAM_URI: where QEMU sends the data (tcp://ADDR[:PORT]).
        public var migrateURI: String?
        /// VIR_MIGRATE_PARAM_DEST_NAME
        public var destinationName: String?
        /// VIR_MIGRATE_PARAM_DEST_XML
        public var destinationXML: String?
        /// VIR_MIGRATE_PARAM_PERSIST_XML
        public var persistentXML: String?
        /// VIR_MIGRATE_PARAM_BANDWIDTH (MiB/s)
        public var bandwidth: UInt64?
        /// VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY (bytes/s)
        public var bandwidthPostcopy: UInt64?
        /// VIR_MIGRATE_PARAM_LISTEN_ADDRESS
        public var listenAddress: String?
        /// VIR_MIGRATE_PARAM_MIGRATE_DISKS: the disks to copy (by target), one entry each.
        public var migrateDisks: [String]?
        /// VIR_MIGRATE_PARAM_DISKS_PORT
        public var disksPort: Int32?
        /// VIR_MIGRATE_PARAM_DISKS_URI
        public var disksURI: String?
        /// VIR_MIGRATE_PARAM_COMPRESSION: methods, one entry each (xbzrle, mt).
        public var compression: [String]?
        /// VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL (percent)
        public var autoConvergeInitial: Int32?
        /// VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT (percent)
        public var autoConvergeIncrement: Int32?
        /// VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS
        public var parallelConnections: Int32?
        /// VIR_MIGRATE_PARAM_TLS_DESTINATION: the name the destination's certificate must carry.
        public var tlsDestination: String?

        public init() {}

        public static var fields: [TypedParameterField<MigrationParameters>] {
            [
                .string("migrate_uri", \.migrateURI),
                .string("destination_name", \.destinationName),
                .string("destination_xml", \.destinationXML),
                .string("persistent_xml", \.persistentXML),
                .ullong("bandwidth", \.bandwidth),
                .ullong("bandwidth.postcopy", \.bandwidthPostcopy),
                .string("listen_address", \.listenAddress),
                .strings("migrate_disks", \.migrateDisks),
                .int("disks_port", \.disksPort),
                .string("disks_uri", \.disksURI),
                .strings("compression", \.compression),
                .int("auto_converge.initial", \.autoConvergeInitial),
                .int("auto_converge.increment", \.autoConvergeIncrement),
                .int("parallel.connections", \.parallelConnections),
                .string("tls.destination", \.tlsDestination),
            ]
        }
    }

    /// Migrates the domain to the libvirt at `destinationURI` (the source's libvirtd connects
    /// to it itself with `.peerToPeer`). Blocks until the migration ends.
    /// Calls `virDomainMigrateToURI3`.
    public func migrate(
        toURI destinationURI: String, parameters: MigrationParameters, flags: MigrateFlags
    ) throws(LibvirtError) {
        let list = try TypedParameterList(parameters.typedParameters)
        try call("virDomainMigrateToURI3") {
            virDomainMigrateToURI3(pointer, destinationURI, list.parameters, UInt32(list.count), flags.rawValue)
        }
    }

    /// Sets the downtime (ms) a running migration may take at its switch-over.
    /// Calls `virDomainMigrateSetMaxDowntime`.
    public func setMigrationMaxDowntime(milliseconds: UInt64) throws(LibvirtError) {
        try call("virDomainMigrateSetMaxDowntime") { virDomainMigrateSetMaxDowntime(pointer, milliseconds, 0) }
    }

    /// The allowed switch-over downtime (ms). Calls `virDomainMigrateGetMaxDowntime`.
    public func migrationMaxDowntime() throws(LibvirtError) -> UInt64 {
        var value: UInt64 = 0
        try call("virDomainMigrateGetMaxDowntime") { virDomainMigrateGetMaxDowntime(pointer, &value, 0) }
        return value
    }

    /// Switches a running migration started with `.postcopy` to post-copy.
    /// Calls `virDomainMigrateStartPostCopy`.
    public func startPostCopy() throws(LibvirtError) {
        try call("virDomainMigrateStartPostCopy") { virDomainMigrateStartPostCopy(pointer, 0) }
    }
}
