internal import Libvirt

/// A VM's state, in the vendors' terms.
public enum VMState: String, Sendable, Codable, CustomStringConvertible {
    case running
    case paused
    case shuttingDown = "shutting down"
    case shutOff = "shut off"
    /// Stopped with its memory saved by libvirt (managed save): the next start resumes it.
    case suspendedToDisk = "suspended to disk"
    /// Suspended by the guest's own power management (S3).
    case guestSuspended = "guest suspended"
    case crashed
    case unknown

    public var description: String { rawValue }

    /// Whether the VM has a live QEMU process.
    public var isActive: Bool {
        switch self {
        case .running, .paused, .shuttingDown, .guestSuspended: true
        case .shutOff, .suspendedToDisk, .crashed, .unknown: false
        }
    }

    init(_ state: Domain.State, managedSave: Bool) {
        switch state {
        case .running, .blocked: self = .running
        case .paused: self = .paused
        case .shutdown: self = .shuttingDown
        case .shutoff: self = managedSave ? .suspendedToDisk : .shutOff
        case .crashed: self = .crashed
        case .pmSuspended: self = .guestSuspended
        case .noState: self = .unknown
        }
    }
}
