/// The return codes of the DMTF CIM virtual-system services (CIM_VirtualSystemMigrationService
/// MigrateVirtualSystemToHost and friends), which every VMDriver operation reports.
public enum ReturnCode: UInt32, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// 0: Completed with No Error.
    case completed = 0
    /// 1: Not Supported: the host or driver cannot do this.
    case notSupported = 1
    /// 2: Failed, for reasons the message gives.
    case failed = 2
    /// 3: Timeout. Unlike CIM's "state unknown", VMDriver's message says where the VM is.
    case timeout = 3
    /// 4: Invalid Parameter: a parameter is formally invalid (a VM that does not exist, bad XML …).
    case invalidParameter = 4
    /// 5: Invalid State: the VM or a host is in a state that does not allow the operation.
    case invalidState = 5
    /// 6: Incompatible Parameters: parameters that are fine alone but not together or on this host.
    case incompatibleParameters = 6
    /// 4096: Method Parameters Checked - Job Started.
    case jobStarted = 4096

    /// The process exit status `vmctl` uses for the code (0–6; a started job is still running, 0).
    public var exitStatus: Int32 { self == .jobStarted ? 0 : Int32(rawValue) }

    public var description: String {
        switch self {
        case .completed: "completed"
        case .notSupported: "not supported"
        case .failed: "failed"
        case .timeout: "timeout"
        case .invalidParameter: "invalid parameter"
        case .invalidState: "invalid state"
        case .incompatibleParameters: "incompatible parameters"
        case .jobStarted: "job started"
        }
    }
}
