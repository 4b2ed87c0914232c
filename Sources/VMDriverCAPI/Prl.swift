import Foundation
import Synchronization
import VMDriver

// The Parallels (Virtuozzo) SDK's C entry points over VMDriver (PrlApi.h). A PRL_HANDLE is the
// handle table's integer carried in a pointer, as the SDK's own handles are opaque pointers.

public typealias PRLHandle = UnsafeMutablePointer<Int32>?

enum Prl {
    static let success: Int32 = 0
    static let invalidArgument = Int32(bitPattern: 0x8000_0003)
    static let invalidHandle = Int32(bitPattern: 0x8000_0004)
    static let bufferOverrun = Int32(bitPattern: 0x8000_0006)
    static let unimplemented = Int32(bitPattern: 0x8000_0008)
    static let failure = Int32(bitPattern: 0x8000_0009)
    static let noData = Int32(bitPattern: 0x8000_0014)
    static let timeout = Int32(bitPattern: 0x8000_0015)
    static let invalidParameter = Int32(bitPattern: 0x8000_0018)
    static let vmNotFound = Int32(bitPattern: 0x8000_0105)
    static let requestNotSupported = Int32(bitPattern: 0x8000_0201)
    static let cantConnect = Int32(bitPattern: 0x8000_0249)
    static let cancelled = Int32(bitPattern: 0x8000_0275)
    static let wrongSecurityLevel = Int32(bitPattern: 0x8000_0277)
    static let notInitialized = Int32(bitPattern: 0x8000_0287)
    static let unsuitableState = Int32(bitPattern: 0x8003_1017)

    static let initialized = Atomic<Bool>(false)

    static func handle(_ pointer: PRLHandle) -> Int32 { Int32(truncatingIfNeeded: Int(bitPattern: pointer)) }
    static func pointer(_ handle: Int32) -> PRLHandle { UnsafeMutablePointer(bitPattern: Int(handle)) }

    /// VMDriver's CIM codes as PRL_RESULT values (README, "Using VMDriver from C"): 1 →
    /// PRL_ERR_VM_REQUEST_NOT_SUPPORTED, 2 → PRL_ERR_FAILURE, 3 → PRL_ERR_TIMEOUT, 4 →
    /// PRL_ERR_INVALID_ARG, 5 → PRL_ERR_VM_MIGRATE_UNSUITABLE_VM_STATE, 6 → PRL_ERR_INVALID_PARAM;
    /// a cancelled job PRL_ERR_OPERATION_WAS_CANCELED.
    static func result(_ error: VMDriverError, cancelled: Bool = false) -> Int32 {
        if let specific = error.cause as? Specific { return specific.code }
        if cancelled { return Prl.cancelled }
        switch error.code {
        case .completed, .jobStarted: return success
        case .notSupported: return requestNotSupported
        case .failed: return failure
        case .timeout: return timeout
        case .invalidParameter: return invalidArgument
        case .invalidState: return unsuitableState
        case .incompatibleParameters: return invalidParameter
        }
    }

    /// A failure with a PRL_RESULT of its own.
    final class Specific: Error, @unchecked Sendable {
        let code: Int32
        init(_ code: Int32) { self.code = code }
    }

    static func failing(_ code: Int32, _ error: VMDriverError) -> VMDriverError {
        VMDriverError(error.code, error.message, cause: Specific(code))
    }

    static func names(_ value: Int32) -> String {
        let known: [Int32: String] = [
            success: "PRL_ERR_SUCCESS", invalidArgument: "PRL_ERR_INVALID_ARG", invalidHandle: "PRL_ERR_INVALID_HANDLE",
            bufferOverrun: "PRL_ERR_BUFFER_OVERRUN", unimplemented: "PRL_ERR_UNIMPLEMENTED", failure: "PRL_ERR_FAILURE",
            noData: "PRL_ERR_NO_DATA", timeout: "PRL_ERR_TIMEOUT", invalidParameter: "PRL_ERR_INVALID_PARAM",
            vmNotFound: "PRL_ERR_VM_UUID_NOT_FOUND", requestNotSupported: "PRL_ERR_VM_REQUEST_NOT_SUPPORTED",
            cantConnect: "PRL_ERR_CANT_CONNECT_TO_DISPATCHER", cancelled: "PRL_ERR_OPERATION_WAS_CANCELED",
            wrongSecurityLevel: "PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL", notInitialized: "PRL_ERR_API_WASNT_INITIALIZED",
            unsuitableState: "PRL_ERR_VM_MIGRATE_UNSUITABLE_VM_STATE",
        ]
        return known[value] ?? String(format: "0x%08x", UInt32(bitPattern: value))
    }
    static let nameCache = Mutex<[Int32: UnsafePointer<CChar>]>([:])

    /// A job's PRL_RESULT: the operation's, once it has ended.
    static func retCode(_ job: APIJob) -> Int32? {
        switch job.current {
        case nil: nil
        case .success?: success
        case .failure(let error)?: result(error, cancelled: job.isCancelRequested)
        }
    }

    static func start(_ body: @escaping @Sendable (APIJob) async throws(VMDriverError) -> APIJob.Payload) -> PRLHandle {
        pointer(APIJob.start(body))
    }

    static func refused(_ code: Int32, _ message: String) -> PRLHandle {
        let error = failing(code, VMDriverError(.invalidParameter, message))
        return start { _ throws(VMDriverError) in throw error }
    }
}

/// A Parallels server handle: a host once logged in.
final class PrlServerObject: HandleObject, @unchecked Sendable {
    private let lock = NSLock()
    private var connected: VMDriver.Host?
    var host: VMDriver.Host? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return connected
        }
        set {
            lock.lock()
            connected = newValue
            lock.unlock()
        }
    }
}

/// A job's result: the handles it produced (PrlResult_GetParamByIndex).
final class PrlResultObject: HandleObject {
    let handles: [Int32]
    init(handles: [Int32]) {
        self.handles = handles
        for handle in handles { Handles.shared.retain(handle) }
    }
    deinit { for handle in handles { Handles.shared.release(handle) } }
}

/// PrlVm_GetState's result.
final class PrlVMInfoObject: HandleObject {
    let state: VMState
    init(state: VMState) { self.state = state }
}

// MARK: - API and handles

@_cdecl("PrlApi_InitEx")
public func PrlApi_InitEx(_ version: UInt32, _ mode: UInt32, _ flags: UInt32, _ reserved: UInt32) -> Int32 {
    Prl.initialized.store(true, ordering: .sequentiallyConsistent)
    return Prl.success
}

@_cdecl("PrlApi_Init")
public func PrlApi_Init(_ version: UInt32) -> Int32 { PrlApi_InitEx(version, 0, 0, 0) }

@_cdecl("PrlApi_Deinit")
public func PrlApi_Deinit() -> Int32 {
    Prl.initialized.store(false, ordering: .sequentiallyConsistent)
    return Prl.success
}

@_cdecl("PrlApi_GetVersion")
public func PrlApi_GetVersion(_ version: UnsafeMutablePointer<UInt32>?) -> Int32 {
    version?.pointee = 7 << 16
    return Prl.success
}

@_cdecl("SdkWrap_Load")
public func SdkWrap_Load(_ name: UnsafePointer<CChar>?) -> Int32 { Prl.success }

@_cdecl("SdkWrap_Unload")
public func SdkWrap_Unload() -> Int32 { Prl.success }

@_cdecl("SdkWrap_IsLoaded")
public func SdkWrap_IsLoaded() -> UInt32 { 1 }

@_cdecl("PrlHandle_Free")
public func PrlHandle_Free(_ handle: PRLHandle) -> Int32 {
    Handles.shared.release(Prl.handle(handle)) ? Prl.success : Prl.invalidHandle
}

@_cdecl("PrlHandle_AddRef")
public func PrlHandle_AddRef(_ handle: PRLHandle) -> Int32 {
    Handles.shared.retain(Prl.handle(handle))
    return Prl.success
}

@_cdecl("PrlHandle_GetType")
public func PrlHandle_GetType(_ handle: PRLHandle, _ type: UnsafeMutablePointer<UInt32>?) -> Int32 {
    let value = Prl.handle(handle)
    let kind: UInt32? =
        if Handles.shared.get(value, as: PrlServerObject.self) != nil {
            0x1000_0001
        } else if Handles.shared.get(value, as: VMObject.self) != nil {
            0x1000_0005
        } else if Handles.shared.get(value, as: APIJob.self) != nil {
            0x1000_0011
        } else if Handles.shared.get(value, as: PrlResultObject.self) != nil {
            0x1000_0013
        } else if Handles.shared.get(value, as: PrlVMInfoObject.self) != nil { 0x1000_0014 } else { nil }
    guard let kind else { return Prl.invalidHandle }
    type?.pointee = kind
    return Prl.success
}

@_cdecl("PrlDbg_PrlResultToString")
public func PrlDbg_PrlResultToString(_ value: Int32, _ result: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    let pointer = Prl.nameCache.withLock { cache in
        if let known = cache[value] { return known }
        let made = UnsafePointer(strdup(Prl.names(value))!)
        cache[value] = made
        return made
    }
    result?.pointee = pointer
    return Prl.success
}

// MARK: - Jobs and results

private func job(_ handle: PRLHandle) -> APIJob? { Handles.shared.get(Prl.handle(handle), as: APIJob.self) }

@_cdecl("PrlJob_Wait")
public func PrlJob_Wait(_ handle: PRLHandle, _ milliseconds: UInt32) -> Int32 {
    guard let job = job(handle) else { return Prl.invalidHandle }
    guard job.wait(timeout: .milliseconds(Int64(milliseconds))) != nil else { return Prl.timeout }
    return Prl.success
}

@_cdecl("PrlJob_GetRetCode")
public func PrlJob_GetRetCode(_ handle: PRLHandle, _ code: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let job = job(handle) else { return Prl.invalidHandle }
    guard let value = Prl.retCode(job) else { return Prl.timeout }
    code?.pointee = value
    return Prl.success
}

@_cdecl("PrlJob_GetStatus")
public func PrlJob_GetStatus(_ handle: PRLHandle, _ status: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guard let job = job(handle) else { return Prl.invalidHandle }
    status?.pointee = job.current == nil ? 0xD000_0001 : 0xD000_0002
    return Prl.success
}

@_cdecl("PrlJob_GetProgress")
public func PrlJob_GetProgress(_ handle: PRLHandle, _ percentage: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guard let job = job(handle) else { return Prl.invalidHandle }
    percentage?.pointee = UInt32(job.progress)
    return Prl.success
}

@_cdecl("PrlJob_GetResult")
public func PrlJob_GetResult(_ handle: PRLHandle, _ result: UnsafeMutablePointer<PRLHandle>?) -> Int32 {
    guard let job = job(handle) else { return Prl.invalidHandle }
    switch job.current {
    case nil: return Prl.timeout
    case .failure(let error)?: return Prl.result(error, cancelled: job.isCancelRequested)
    case .success(let payload)?:
        let handles: [Int32] =
            switch payload {
            case .none: []
            case .handle(let one): [one]
            case .handles(let many): many
            }
        result?.pointee = Prl.pointer(Handles.shared.add(PrlResultObject(handles: handles)))
        return Prl.success
    }
}

/// Cancels the job; the returned job ends once the cancelled one has (rolled back).
@_cdecl("PrlJob_Cancel")
public func PrlJob_Cancel(_ handle: PRLHandle) -> PRLHandle {
    guard let target = job(handle) else { return Prl.refused(Prl.invalidHandle, "not a job handle") }
    return Prl.start { _ throws(VMDriverError) in
        target.cancel()
        while target.current == nil { try? await Task.sleep(for: .milliseconds(50)) }
        return .none
    }
}

private func resultObject(_ handle: PRLHandle) -> PrlResultObject? {
    Handles.shared.get(Prl.handle(handle), as: PrlResultObject.self)
}

@_cdecl("PrlResult_GetParamsCount")
public func PrlResult_GetParamsCount(_ handle: PRLHandle, _ count: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guard let result = resultObject(handle) else { return Prl.invalidHandle }
    count?.pointee = UInt32(result.handles.count)
    return Prl.success
}

@_cdecl("PrlResult_GetParamByIndex")
public func PrlResult_GetParamByIndex(_ handle: PRLHandle, _ index: UInt32, _ param: UnsafeMutablePointer<PRLHandle>?) -> Int32 {
    guard let result = resultObject(handle) else { return Prl.invalidHandle }
    guard Int(index) < result.handles.count else { return Prl.invalidArgument }
    let item = result.handles[Int(index)]
    Handles.shared.retain(item)
    param?.pointee = Prl.pointer(item)
    return Prl.success
}

@_cdecl("PrlResult_GetParam")
public func PrlResult_GetParam(_ handle: PRLHandle, _ param: UnsafeMutablePointer<PRLHandle>?) -> Int32 {
    guard let result = resultObject(handle) else { return Prl.invalidHandle }
    guard !result.handles.isEmpty else { return Prl.noData }
    return PrlResult_GetParamByIndex(handle, 0, param)
}

// MARK: - Server

@_cdecl("PrlSrv_Create")
public func PrlSrv_Create(_ handle: UnsafeMutablePointer<PRLHandle>?) -> Int32 {
    guard Prl.initialized.load(ordering: .sequentiallyConsistent) else { return Prl.notInitialized }
    handle?.pointee = Prl.pointer(Handles.shared.add(PrlServerObject()))
    return Prl.success
}

private func prlLogin(
    _ server: PRLHandle, uri: @escaping @Sendable () throws(VMDriverError) -> String, credentials: VMDriver.Host.Credentials?
)
    -> PRLHandle
{
    guard let object = Handles.shared.get(Prl.handle(server), as: PrlServerObject.self) else {
        return Prl.refused(Prl.invalidHandle, "not a server handle")
    }
    return Prl.start { _ throws(VMDriverError) in
        do throws(VMDriverError) {
            object.host = try await Host.connect(try uri(), credentials: credentials)
        } catch {
            throw Prl.failing(error.code == .invalidParameter ? Prl.invalidArgument : Prl.cantConnect, error)
        }
        return .none
    }
}

@_cdecl("PrlSrv_LoginLocal")
public func PrlSrv_LoginLocal(_ server: PRLHandle, _ session: UnsafePointer<CChar>?, _ port: UInt32, _ security: UInt32)
    -> PRLHandle
{
    // The local host's own socket: every security level is met.
    prlLogin(server, uri: { "qemu:///system" }, credentials: nil)
}

/// PrlSrv_Login: a host name (with port_cmd, libvirtd's port) is reached over TCP for
/// PSL_LOW_SECURITY and over TLS for normal and high; a libvirt URI is used as it is.
@_cdecl("PrlSrv_Login")
public func PrlSrv_Login(
    _ server: PRLHandle, _ host: UnsafePointer<CChar>?, _ user: UnsafePointer<CChar>?, _ password: UnsafePointer<CChar>?,
    _ session: UnsafePointer<CChar>?, _ port: UInt32, _ timeout: UInt32, _ security: UInt32
) -> PRLHandle {
    let name = text(host)
    let username = text(user)
    let secret = text(password)
    guard security <= 2 else { return Prl.refused(Prl.wrongSecurityLevel, "security level \(security) is not PSL_*") }
    let credentials = (username != nil || secret != nil) ? VMDriver.Host.Credentials(username: username, password: secret) : nil
    return prlLogin(
        server,
        uri: { () throws(VMDriverError) -> String in
            guard let name, !name.isEmpty else { return "qemu:///system" }
            if name.contains("://") { return name }
            let destination = try MigrationDestination(parsing: port > 0 ? "\(name):\(port)" : name)
            let address = destination.kind == .ipv6 ? "[\(destination.host)]" : destination.host
            return "qemu+\(security == 0 ? "tcp" : "tls")://\(address)\(destination.port.map { ":\($0)" } ?? "")/system"
        }, credentials: credentials)
}

@_cdecl("PrlSrv_Logoff")
public func PrlSrv_Logoff(_ server: PRLHandle) -> PRLHandle {
    guard let object = Handles.shared.get(Prl.handle(server), as: PrlServerObject.self) else {
        return Prl.refused(Prl.invalidHandle, "not a server handle")
    }
    return Prl.start { _ throws(VMDriverError) in
        let host = object.host
        object.host = nil
        try await host?.close()
        return .none
    }
}

@_cdecl("PrlSrv_GetVmList")
public func PrlSrv_GetVmList(_ server: PRLHandle) -> PRLHandle {
    guard let host = Handles.shared.get(Prl.handle(server), as: PrlServerObject.self)?.host else {
        return Prl.refused(Prl.invalidHandle, "not a server handle that is logged in")
    }
    return Prl.start { _ throws(VMDriverError) in
        let vms = try await host.list(all: true)
        let handles = vms.map { Handles.shared.add(VMObject(vm: $0)) }
        // The result holds its own references; the job's go with the job.
        return .handles(handles)
    }
}

// MARK: - VMs

private func vm(_ handle: PRLHandle) -> VirtualMachine? { Handles.shared.get(Prl.handle(handle), as: VMObject.self)?.vm }

/// Copies `text` into the caller's buffer as the SDK's getters do: a NULL buffer asks for the
/// size (with the NUL); a short one is PRL_ERR_BUFFER_OVERRUN.
private func copyOut(_ text: String, _ buffer: UnsafeMutablePointer<CChar>?, _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
    let bytes = Array(text.utf8CString)
    guard let length else { return Prl.invalidArgument }
    guard let buffer else {
        length.pointee = UInt32(bytes.count)
        return Prl.success
    }
    guard Int(length.pointee) >= bytes.count else {
        length.pointee = UInt32(bytes.count)
        return Prl.bufferOverrun
    }
    bytes.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: bytes.count) }
    length.pointee = UInt32(bytes.count)
    return Prl.success
}

@_cdecl("PrlVm_GetConfig")
public func PrlVm_GetConfig(_ handle: PRLHandle, _ config: UnsafeMutablePointer<PRLHandle>?) -> Int32 {
    // A VM handle is its own configuration handle (PHT_VM_CONFIGURATION = PHT_VIRTUAL_MACHINE).
    guard vm(handle) != nil else { return Prl.invalidHandle }
    Handles.shared.retain(Prl.handle(handle))
    config?.pointee = handle
    return Prl.success
}

@_cdecl("PrlVmCfg_GetName")
public func PrlVmCfg_GetName(_ handle: PRLHandle, _ buffer: UnsafeMutablePointer<CChar>?, _ length: UnsafeMutablePointer<UInt32>?)
    -> Int32
{
    guard let vm = vm(handle) else { return Prl.invalidHandle }
    return copyOut(vm.name, buffer, length)
}

@_cdecl("PrlVmCfg_GetUuid")
public func PrlVmCfg_GetUuid(_ handle: PRLHandle, _ buffer: UnsafeMutablePointer<CChar>?, _ length: UnsafeMutablePointer<UInt32>?)
    -> Int32
{
    guard let vm = vm(handle) else { return Prl.invalidHandle }
    // The SDK writes UUIDs in braces.
    return copyOut("{\(vm.uuid.uuidString.lowercased())}", buffer, length)
}

@_cdecl("PrlVm_GetState")
public func PrlVm_GetState(_ handle: PRLHandle) -> PRLHandle {
    guard let vm = vm(handle) else { return Prl.refused(Prl.invalidHandle, "not a VM handle") }
    return Prl.start { _ throws(VMDriverError) in
        .handle(Handles.shared.add(PrlVMInfoObject(state: try await vm.state())))
    }
}

@_cdecl("PrlVmInfo_GetState")
public func PrlVmInfo_GetState(_ handle: PRLHandle, _ state: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guard let info = Handles.shared.get(Prl.handle(handle), as: PrlVMInfoObject.self) else { return Prl.invalidHandle }
    let value: UInt32 =
        switch info.state {
        case .running: 0x3000_0004
        case .paused: 0x3000_0005
        case .shuttingDown: 0x3000_0007
        case .shutOff, .crashed: 0x3000_0001
        case .suspendedToDisk, .guestSuspended: 0x3000_0009
        case .unknown: 0
        }
    state?.pointee = value
    return Prl.success
}

/// PrlVm_MigrateEx: target_host any destination VMDriver accepts (with target_port); the
/// session id is accepted and not used (VMDriver reaches the target with the transport the
/// security level picks; TLS uses VMDRIVER_PKIPATH's client certificate when set);
/// target_home_path → the target folder; PVMT_COLD/WARM/HOT_MIGRATION → the type (none: auto);
/// PVMSL_LOW/NORMAL/HIGH_SECURITY → the security level; PVMT_CLONE_MODE → keep the source;
/// force_operation → force. Other flags (PVMT_DONT_RESUME_VM among them) are
/// PRL_ERR_UNIMPLEMENTED with nothing moved.
@_cdecl("PrlVm_MigrateEx")
public func PrlVm_MigrateEx(
    _ handle: PRLHandle, _ targetHost: UnsafePointer<CChar>?, _ targetPort: UInt32, _ session: UnsafePointer<CChar>?,
    _ home: UnsafePointer<CChar>?, _ flags: UInt32, _ reserved: UInt32, _ force: UInt32
) -> PRLHandle {
    guard let vm = vm(handle) else { return Prl.refused(Prl.invalidHandle, "not a VM handle") }
    guard let target = text(targetHost), !target.isEmpty else { return Prl.refused(Prl.invalidArgument, "no target_host given") }
    let homePath = text(home)
    var options = MigrationOptions()
    switch flags & 0x3 {
    case 0: options.security = .low
    case 1: options.security = .normal
    case 2: options.security = .high
    default: return Prl.refused(Prl.wrongSecurityLevel, "migration_flags name two security levels")
    }
    let types = flags & (0x800 | 0x1000 | 0x2000)
    switch types {
    case 0: options.type = .auto
    case 0x800: options.type = .cold
    case 0x1000: options.type = .warm
    case 0x2000: options.type = .hot
    default: return Prl.refused(Prl.invalidArgument, "migration_flags name more than one of PVMT_COLD/WARM/HOT_MIGRATION")
    }
    if flags & 0x8000 != 0 { options.keepSource = true }
    let unsupported = flags & ~UInt32(0x3 | 0x800 | 0x1000 | 0x2000 | 0x8000)
    if unsupported != 0 {
        return Prl.refused(
            Prl.unimplemented, String(format: "migration_flags 0x%x are not supported by VMDriver (nothing moved)", unsupported))
    }
    options.force = force != 0
    if let homePath, !homePath.isEmpty { options.home = homePath }
    if let pki = ProcessInfo.processInfo.environment["VMDRIVER_PKIPATH"], !pki.isEmpty { options.clientPKIPath = pki }
    let chosen = options
    let destination = targetPort > 0 && !target.contains("://") && !target.contains(":") ? "\(target):\(targetPort)" : target
    return Prl.start { job throws(VMDriverError) in
        do throws(VMDriverError) {
            let migration = try await vm.migrate(to: destination, options: chosen)
            _ = try await job.follow(migration)
            return .none
        } catch {
            // A level the hosts cannot give (no certificates for TLS) is the SDK's security error.
            let security = error.code == .notSupported && error.message.lowercased().contains("security")
            throw security ? Prl.failing(Prl.wrongSecurityLevel, error) : error
        }
    }
}
