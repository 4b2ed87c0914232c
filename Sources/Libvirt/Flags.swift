internal import CLibvirt

// One OptionSet per libvirt flag enum, each member named after its C constant.

extension Connection {
    /// `virConnectListAllDomainsFlags`.
    public struct ListDomainsFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_CONNECT_LIST_DOMAINS_ACTIVE
        public static let active = Self(rawValue: 1 << 0)
        /// VIR_CONNECT_LIST_DOMAINS_INACTIVE
        public static let inactive = Self(rawValue: 1 << 1)
        /// VIR_CONNECT_LIST_DOMAINS_PERSISTENT
        public static let persistent = Self(rawValue: 1 << 2)
        /// VIR_CONNECT_LIST_DOMAINS_TRANSIENT
        public static let transient = Self(rawValue: 1 << 3)
        /// VIR_CONNECT_LIST_DOMAINS_RUNNING
        public static let running = Self(rawValue: 1 << 4)
        /// VIR_CONNECT_LIST_DOMAINS_PAUSED
        public static let paused = Self(rawValue: 1 << 5)
        /// VIR_CONNECT_LIST_DOMAINS_SHUTOFF
        public static let shutoff = Self(rawValue: 1 << 6)
        /// VIR_CONNECT_LIST_DOMAINS_OTHER
        public static let other = Self(rawValue: 1 << 7)
        /// VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE
        public static let managedSave = Self(rawValue: 1 << 8)
        /// VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE
        public static let noManagedSave = Self(rawValue: 1 << 9)
        /// VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT
        public static let hasSnapshot = Self(rawValue: 1 << 12)
        /// VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT
        public static let noSnapshot = Self(rawValue: 1 << 13)
    }

    /// `virDomainDefineFlags`.
    public struct DefineFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_DEFINE_VALIDATE: validate the XML against libvirt's schema.
        public static let validate = Self(rawValue: 1 << 0)
    }
}

extension Domain {
    /// `virDomainCreateFlags`.
    public struct StartFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_START_PAUSED
        public static let paused = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_START_AUTODESTROY: destroyed when the connection that started it closes.
        public static let autoDestroy = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_START_BYPASS_CACHE
        public static let bypassCache = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_START_FORCE_BOOT: boot, discarding a managed-save image.
        public static let forceBoot = Self(rawValue: 1 << 3)
        /// VIR_DOMAIN_START_VALIDATE
        public static let validate = Self(rawValue: 1 << 4)
    }

    /// `virDomainShutdownFlagValues`.
    public struct ShutdownFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        public static let acpiPowerButton = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_SHUTDOWN_GUEST_AGENT
        public static let guestAgent = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_SHUTDOWN_INITCTL
        public static let initctl = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_SHUTDOWN_SIGNAL
        public static let signal = Self(rawValue: 1 << 3)
        /// VIR_DOMAIN_SHUTDOWN_PARAVIRT
        public static let paravirt = Self(rawValue: 1 << 4)
    }

    /// `virDomainDestroyFlagsValues`.
    public struct DestroyFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_DESTROY_GRACEFUL: SIGTERM only, no SIGKILL.
        public static let graceful = Self(rawValue: 1 << 0)
    }

    /// `virDomainXMLFlags`.
    public struct XMLFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_XML_SECURE: include passwords and other secrets.
        public static let secure = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_XML_INACTIVE: the persistent definition, not the live one.
        public static let inactive = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_XML_UPDATE_CPU
        public static let updateCPU = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_XML_MIGRATABLE
        public static let migratable = Self(rawValue: 1 << 3)
    }

    /// `virDomainUndefineFlagsValues`.
    public struct UndefineFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        public static let managedSave = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        public static let snapshotsMetadata = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_UNDEFINE_NVRAM
        public static let nvram = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
        public static let keepNVRAM = Self(rawValue: 1 << 3)
        /// VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        public static let checkpointsMetadata = Self(rawValue: 1 << 4)
        /// VIR_DOMAIN_UNDEFINE_TPM
        public static let tpm = Self(rawValue: 1 << 5)
    }
}
