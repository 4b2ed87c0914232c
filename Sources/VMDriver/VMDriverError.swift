// Public: VMDriverError exposes the libvirt error behind it (`cause`, `libvirtError`).
public import Libvirt

/// An operation's failure: a CIM return code, a message that names the VM and the host and says
/// what to do, and the underlying cause (usually a `LibvirtError`).
public struct VMDriverError: Error, Sendable, CustomStringConvertible {
    public let code: ReturnCode
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: ReturnCode, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// Wraps a libvirt failure: the code comes from the one mapping table, the message says what
    /// VMDriver was doing (`context`), then what libvirt said.
    public init(_ error: LibvirtError, while context: String) {
        self.init(ReturnCode(error.code), "\(context): \(error.message)", cause: error)
    }

    /// The libvirt error behind this one, if any.
    public var libvirtError: LibvirtError? { cause as? LibvirtError }

    public var description: String { "\(message) (code \(code.rawValue): \(code))" }
}

extension ReturnCode {
    /// The one table from libvirt error codes to CIM return codes.
    public init(_ code: LibvirtError.Code) {
        switch code {
        case .noSupport, .argumentUnsupported, .operationUnsupported, .configUnsupported:
            self = .notSupported
        case .invalidArgument, .xmlError, .xmlDetail, .xmlInvalidSchema, .noDomain, .noName, .osType,
            .noDomainSnapshot, .noStoragePool, .noStorageVolume, .invalidMAC, .domainExists,
            .storageVolumeExists, .multipleDomains, .noSource:
            self = .invalidParameter
        case .operationInvalid, .resourceBusy, .blockCopyActive, .agentUnresponsive:
            self = .invalidState
        case .operationTimeout:
            self = .timeout
        case .migrateUnsafe, .cpuIncompatible:
            self = .incompatibleParameters
        default:
            self = .failed
        }
    }
}
