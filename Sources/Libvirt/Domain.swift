internal import CLibvirt
import Foundation

/// A libvirt domain (a virtual machine) on one connection.
///
/// libvirt domain objects are reference counted and safe to use from several threads, so the
/// handle is `@unchecked Sendable`. It keeps its connection alive. `deinit` frees the reference.
public final class Domain: @unchecked Sendable {
    let pointer: virDomainPtr
    /// The connection the domain came from.
    public let connection: Connection

    /// Takes over a reference the caller owns.
    init(owning pointer: virDomainPtr, connection: Connection) {
        self.pointer = pointer
        self.connection = connection
    }

    /// Wraps a pointer libvirt only lends (in a callback): takes a reference of our own first.
    convenience init(borrowing pointer: virDomainPtr, connection: Connection) {
        virDomainRef(pointer)
        self.init(owning: pointer, connection: connection)
    }

    deinit { virDomainFree(pointer) }

    /// The domain's name. Calls `virDomainGetName`.
    public func name() throws(LibvirtError) -> String {
        String(cString: try call("virDomainGetName") { virDomainGetName(pointer) })
    }

    /// The domain's UUID. Calls `virDomainGetUUIDString`.
    public func uuid() throws(LibvirtError) -> UUID {
        var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        try call("virDomainGetUUIDString") { virDomainGetUUIDString(pointer, &buffer) }
        let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let uuid = UUID(uuidString: text) else {
            throw LibvirtError(
                code: .internalError, message: "libvirt returned an invalid UUID '\(text)'", function: "virDomainGetUUIDString")
        }
        return uuid
    }

    /// The domain's run state and the reason for it. Calls `virDomainGetState`.
    public func state() throws(LibvirtError) -> (state: State, reason: Int32) {
        var state: Int32 = 0
        var reason: Int32 = 0
        try call("virDomainGetState") { virDomainGetState(pointer, &state, &reason, 0) }
        return (State(rawValue: state) ?? .noState, reason)
    }

    /// State, memory and vCPU count. Calls `virDomainGetInfo`.
    public func info() throws(LibvirtError) -> Info {
        var info = virDomainInfo()
        try call("virDomainGetInfo") { virDomainGetInfo(pointer, &info) }
        return Info(
            state: State(rawValue: Int32(info.state)) ?? .noState, maxMemoryKiB: UInt64(info.maxMem),
            memoryKiB: UInt64(info.memory), vcpus: UInt32(info.nrVirtCpu), cpuTimeNanoseconds: info.cpuTime)
    }

    /// The domain XML. Calls `virDomainGetXMLDesc`.
    public func xmlDescription(_ flags: XMLFlags = []) throws(LibvirtError) -> String {
        takeString(try call("virDomainGetXMLDesc") { virDomainGetXMLDesc(pointer, flags.rawValue) })
    }

    /// Whether the domain has a persistent definition. Calls `virDomainIsPersistent`.
    public func isPersistent() throws(LibvirtError) -> Bool {
        try call("virDomainIsPersistent") { virDomainIsPersistent(pointer) } == 1
    }

    /// Whether the domain is running (or paused). Calls `virDomainIsActive`.
    public func isActive() throws(LibvirtError) -> Bool {
        try call("virDomainIsActive") { virDomainIsActive(pointer) } == 1
    }

    /// Whether a managed-save image (suspended to disk) exists. Calls `virDomainHasManagedSaveImage`.
    public func hasManagedSaveImage() throws(LibvirtError) -> Bool {
        try call("virDomainHasManagedSaveImage") { virDomainHasManagedSaveImage(pointer, 0) } == 1
    }

    /// Starts a defined domain (restoring its managed-save image if it has one).
    /// Calls `virDomainCreateWithFlags`.
    public func start(_ flags: StartFlags = []) throws(LibvirtError) {
        try call("virDomainCreateWithFlags") { virDomainCreateWithFlags(pointer, flags.rawValue) }
    }

    /// Asks the guest to shut down; returns at once, the guest may ignore it.
    /// Calls `virDomainShutdownFlags`.
    public func shutdown(_ flags: ShutdownFlags = []) throws(LibvirtError) {
        try call("virDomainShutdownFlags") { virDomainShutdownFlags(pointer, flags.rawValue) }
    }

    /// Stops the domain at once, like pulling the plug. Calls `virDomainDestroyFlags`.
    public func destroy(_ flags: DestroyFlags = []) throws(LibvirtError) {
        try call("virDomainDestroyFlags") { virDomainDestroyFlags(pointer, flags.rawValue) }
    }

    /// Pauses the vCPUs; memory stays allocated. Calls `virDomainSuspend`.
    public func suspend() throws(LibvirtError) {
        try call("virDomainSuspend") { virDomainSuspend(pointer) }
    }

    /// Resumes paused vCPUs. Calls `virDomainResume`.
    public func resume() throws(LibvirtError) {
        try call("virDomainResume") { virDomainResume(pointer) }
    }

    /// Saves memory to a libvirt-managed image and stops the domain; the next start restores it.
    /// Calls `virDomainManagedSave`.
    public func managedSave() throws(LibvirtError) {
        try call("virDomainManagedSave") { virDomainManagedSave(pointer, 0) }
    }

    /// Saves memory to a file of the caller's choosing and stops the domain.
    /// Calls `virDomainSaveFlags`.
    public func save(to path: String) throws(LibvirtError) {
        try call("virDomainSaveFlags") { virDomainSaveFlags(pointer, path, nil, 0) }
    }

    /// Removes the managed-save image. Calls `virDomainManagedSaveRemove`.
    public func removeManagedSave() throws(LibvirtError) {
        try call("virDomainManagedSaveRemove") { virDomainManagedSaveRemove(pointer, 0) }
    }

    /// Removes the persistent definition (a running domain becomes transient).
    /// Calls `virDomainUndefineFlags`.
    public func undefine(_ flags: UndefineFlags = []) throws(LibvirtError) {
        try call("virDomainUndefineFlags") { virDomainUndefineFlags(pointer, flags.rawValue) }
    }
}

extension Domain {
    /// `virDomainState`.
    public enum State: Int32, Sendable, CaseIterable {
        /// VIR_DOMAIN_NOSTATE
        case noState = 0
        /// VIR_DOMAIN_RUNNING
        case running = 1
        /// VIR_DOMAIN_BLOCKED: running, but blocked on a resource.
        case blocked = 2
        /// VIR_DOMAIN_PAUSED
        case paused = 3
        /// VIR_DOMAIN_SHUTDOWN: being shut down.
        case shutdown = 4
        /// VIR_DOMAIN_SHUTOFF
        case shutoff = 5
        /// VIR_DOMAIN_CRASHED
        case crashed = 6
        /// VIR_DOMAIN_PMSUSPENDED: suspended by guest power management.
        case pmSuspended = 7
    }

    /// `virDomainInfo`.
    public struct Info: Sendable, Hashable {
        public let state: State
        public let maxMemoryKiB: UInt64
        public let memoryKiB: UInt64
        public let vcpus: UInt32
        public let cpuTimeNanoseconds: UInt64
    }
}
