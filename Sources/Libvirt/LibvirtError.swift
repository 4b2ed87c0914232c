internal import CLibvirt
import Foundation

/// An error reported by libvirt: its code, the subsystem that raised it, its message, and the
/// Swift-side libvirt function that failed.
///
/// `catch` can match codes by name:
/// ```swift
/// do { _ = try connection.lookupDomain(name: "web") }
/// catch let error as LibvirtError where error.code == .noDomain { … }
/// ```
public struct LibvirtError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libvirt's `virErrorNumber`.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// VIR_ERR_OK
        public static let ok = Code(rawValue: 0)
        /// VIR_ERR_INTERNAL_ERROR
        public static let internalError = Code(rawValue: 1)
        /// VIR_ERR_NO_MEMORY
        public static let noMemory = Code(rawValue: 2)
        /// VIR_ERR_NO_SUPPORT: the driver does not implement this function.
        public static let noSupport = Code(rawValue: 3)
        /// VIR_ERR_UNKNOWN_HOST: the host name did not resolve.
        public static let unknownHost = Code(rawValue: 4)
        /// VIR_ERR_NO_CONNECT: could not connect to the hypervisor.
        public static let noConnect = Code(rawValue: 5)
        /// VIR_ERR_INVALID_CONN
        public static let invalidConnection = Code(rawValue: 6)
        /// VIR_ERR_INVALID_DOMAIN
        public static let invalidDomain = Code(rawValue: 7)
        /// VIR_ERR_INVALID_ARG
        public static let invalidArgument = Code(rawValue: 8)
        /// VIR_ERR_OPERATION_FAILED: a command to the hypervisor failed.
        public static let operationFailed = Code(rawValue: 9)
        /// VIR_ERR_OS_TYPE
        public static let osType = Code(rawValue: 16)
        /// VIR_ERR_NO_SOURCE
        public static let noSource = Code(rawValue: 19)
        /// VIR_ERR_NO_NAME
        public static let noName = Code(rawValue: 21)
        /// VIR_ERR_XML_ERROR: the XML is not well formed or not valid.
        public static let xmlError = Code(rawValue: 27)
        /// VIR_ERR_DOM_EXIST: the domain already exists.
        public static let domainExists = Code(rawValue: 28)
        /// VIR_ERR_OPERATION_DENIED: forbidden on a read-only connection.
        public static let operationDenied = Code(rawValue: 29)
        /// VIR_ERR_OPEN_FAILED
        public static let openFailed = Code(rawValue: 30)
        /// VIR_ERR_XML_DETAIL
        public static let xmlDetail = Code(rawValue: 35)
        /// VIR_ERR_SYSTEM_ERROR: a system call failed.
        public static let systemError = Code(rawValue: 38)
        /// VIR_ERR_RPC
        public static let rpc = Code(rawValue: 39)
        /// VIR_ERR_GNUTLS_ERROR
        public static let gnutlsError = Code(rawValue: 40)
        /// VIR_ERR_NO_DOMAIN: no such domain.
        public static let noDomain = Code(rawValue: 42)
        /// VIR_ERR_NO_NETWORK: no such network.
        public static let noNetwork = Code(rawValue: 43)
        /// VIR_ERR_INVALID_MAC
        public static let invalidMAC = Code(rawValue: 44)
        /// VIR_ERR_AUTH_FAILED
        public static let authFailed = Code(rawValue: 45)
        /// VIR_ERR_NO_STORAGE_POOL
        public static let noStoragePool = Code(rawValue: 49)
        /// VIR_ERR_NO_STORAGE_VOL
        public static let noStorageVolume = Code(rawValue: 50)
        /// VIR_ERR_OPERATION_INVALID: not applicable in the object's current state.
        public static let operationInvalid = Code(rawValue: 55)
        /// VIR_ERR_CONFIG_UNSUPPORTED
        public static let configUnsupported = Code(rawValue: 67)
        /// VIR_ERR_OPERATION_TIMEOUT
        public static let operationTimeout = Code(rawValue: 68)
        /// VIR_ERR_MIGRATE_PERSIST_FAILED
        public static let migratePersistFailed = Code(rawValue: 69)
        /// VIR_ERR_NO_DOMAIN_SNAPSHOT
        public static let noDomainSnapshot = Code(rawValue: 72)
        /// VIR_ERR_ARGUMENT_UNSUPPORTED: valid use, but not supported by this driver.
        public static let argumentUnsupported = Code(rawValue: 74)
        /// VIR_ERR_OPERATION_ABORTED
        public static let operationAborted = Code(rawValue: 78)
        /// VIR_ERR_NO_DOMAIN_METADATA: the domain has no such metadata.
        public static let noDomainMetadata = Code(rawValue: 80)
        /// VIR_ERR_MIGRATE_UNSAFE
        public static let migrateUnsafe = Code(rawValue: 81)
        /// VIR_ERR_OVERFLOW
        public static let overflow = Code(rawValue: 82)
        /// VIR_ERR_BLOCK_COPY_ACTIVE
        public static let blockCopyActive = Code(rawValue: 83)
        /// VIR_ERR_OPERATION_UNSUPPORTED: not supported by the hypervisor or host.
        public static let operationUnsupported = Code(rawValue: 84)
        /// VIR_ERR_AGENT_UNRESPONSIVE
        public static let agentUnresponsive = Code(rawValue: 86)
        /// VIR_ERR_RESOURCE_BUSY
        public static let resourceBusy = Code(rawValue: 87)
        /// VIR_ERR_ACCESS_DENIED
        public static let accessDenied = Code(rawValue: 88)
        /// VIR_ERR_STORAGE_VOL_EXIST
        public static let storageVolumeExists = Code(rawValue: 90)
        /// VIR_ERR_CPU_INCOMPATIBLE
        public static let cpuIncompatible = Code(rawValue: 91)
        /// VIR_ERR_XML_INVALID_SCHEMA
        public static let xmlInvalidSchema = Code(rawValue: 92)
        /// VIR_ERR_DEVICE_MISSING
        public static let deviceMissing = Code(rawValue: 99)
        /// VIR_ERR_MULTIPLE_DOMAINS
        public static let multipleDomains = Code(rawValue: 110)

        private static let names: [Int32: String] = [
            0: "ok", 1: "internalError", 2: "noMemory", 3: "noSupport", 4: "unknownHost",
            5: "noConnect", 6: "invalidConnection", 7: "invalidDomain", 8: "invalidArgument",
            9: "operationFailed", 16: "osType", 19: "noSource", 21: "noName", 27: "xmlError",
            28: "domainExists", 29: "operationDenied", 30: "openFailed", 35: "xmlDetail",
            38: "systemError", 39: "rpc", 40: "gnutlsError", 42: "noDomain", 43: "noNetwork", 44: "invalidMAC",
            45: "authFailed", 49: "noStoragePool", 50: "noStorageVolume", 55: "operationInvalid",
            67: "configUnsupported", 68: "operationTimeout", 69: "migratePersistFailed",
            72: "noDomainSnapshot", 74: "argumentUnsupported", 78: "operationAborted", 80: "noDomainMetadata",
            81: "migrateUnsafe", 82: "overflow", 83: "blockCopyActive",
            84: "operationUnsupported", 86: "agentUnresponsive", 87: "resourceBusy",
            88: "accessDenied", 90: "storageVolumeExists", 91: "cpuIncompatible",
            92: "xmlInvalidSchema", 99: "deviceMissing", 110: "multipleDomains",
        ]

        public var description: String { Self.names[rawValue] ?? "code \(rawValue)" }
    }

    /// The libvirt error code.
    public let code: Code
    /// libvirt's `virErrorDomain`: the subsystem that raised the error (QEMU, RPC, storage …).
    public let domain: Int32
    /// libvirt's message, as libvirt wrote it.
    public let message: String
    /// The libvirt function that failed, for example `virDomainCreate`.
    public let function: String
    /// For a system error (`code == .systemError`), the `errno` libvirt reported (its `int1`);
    /// 0 otherwise.
    public let systemErrno: Int32

    public init(code: Code, domain: Int32 = 0, message: String, function: String, systemErrno: Int32 = 0) {
        self.code = code
        self.domain = domain
        self.message = message
        self.function = function
        self.systemErrno = systemErrno
    }

    /// libvirt gave up waiting for a process to end (`EBUSY`), as `virDomainDestroy` does when
    /// QEMU outlives SIGKILL's grace period on a loaded host; trying again usually succeeds.
    public var isBusy: Bool { code == .systemError && systemErrno == EBUSY }

    public var description: String { "\(function): \(message) [\(code)]" }
}
