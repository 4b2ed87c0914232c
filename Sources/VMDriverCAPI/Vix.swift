import Foundation
import VMDriver

// VMware VIX's C entry points over VMDriver (vix.h). Every asynchronous call returns a job
// handle at once; the work runs on VMDriver's threads, `callbackProc` (if given) is called there
// with VIX_EVENTTYPE_JOB_COMPLETED, and VixJob_Wait blocks until the end.

public typealias VixHandle = Int32
public typealias VixError = UInt64
public typealias VixEventProc = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Void

enum Vix {
    static let ok: VixError = 0
    static let fail: VixError = 1
    static let invalidArgument: VixError = 3
    static let fileNotFound: VixError = 4
    static let notSupported: VixError = 6
    static let cancelled: VixError = 10
    static let fileAlreadyExists: VixError = 12
    static let alreadyExists: VixError = 23
    static let unfinishedJob: VixError = 29
    static let invalidHandle: VixError = 1000
    static let notSupportedOnHandleType: VixError = 1001
    static let vmNotRunning: VixError = 3006
    static let vmIsRunning: VixError = 3007
    static let vmNotFound: VixError = 4000
    static let unrecognizedProperty: VixError = 6000
    static let snapshotNotFound: VixError = 13003
    static let snapshotExists: VixError = 13004
    static let cannotConnectToHost: VixError = 18000
    static let invalidHostName: VixError = 18002

    static let eventJobCompleted: Int32 = 2
    static let handleTypeHost: Int32 = 2
    static let handleTypeVM: Int32 = 3
    static let handleTypeJob: Int32 = 6
    static let handleTypeSnapshot: Int32 = 7

    /// VMDriver's CIM codes as VIX errors, for calls with no closer meaning (README, "Using
    /// VMDriver from C"): 1 → VIX_E_NOT_SUPPORTED, 2 → VIX_E_FAIL, 3 → VIX_E_FAIL (VIX has no
    /// general timeout error; the text says it timed out), 4 and 6 → VIX_E_INVALID_ARG,
    /// 5 → `state` (the call's own wrong-state error, VIX_E_VM_IS_RUNNING or _NOT_RUNNING).
    static func error(_ error: VMDriverError, state: VixError = invalidArgument, cancelled: Bool = false) -> VixError {
        if cancelled { return Vix.cancelled }
        switch error.code {
        case .completed, .jobStarted: return ok
        case .notSupported: return notSupported
        case .failed, .timeout: return fail
        case .invalidParameter, .incompatibleParameters: return invalidArgument
        case .invalidState: return state
        }
    }

    /// A job's VIX error: the one its operation set, kept beside the VMDriver error.
    final class Failure: Error, @unchecked Sendable {
        let vix: VixError
        let error: VMDriverError
        init(_ vix: VixError, _ error: VMDriverError) {
            self.vix = vix
            self.error = error
        }
    }

    /// Starts a VIX job; `state` is the VIX error a wrong-state failure (code 5) becomes.
    static func start(
        callback: VixEventProc?, clientData: UnsafeMutableRawPointer?, state: VixError = invalidArgument,
        _ body: @escaping @Sendable (APIJob) async throws(VMDriverError) -> APIJob.Payload
    ) -> VixHandle {
        let data = UInt(bitPattern: clientData)
        var finished: (@Sendable (Int32) -> Void)?
        if let callback {
            finished = { handle in callback(handle, eventJobCompleted, 0, UnsafeMutableRawPointer(bitPattern: data)) }
        }
        let job = APIJob.start(finished: finished, body)
        Handles.shared.get(job, as: APIJob.self)?.wrongStateError = state
        return job
    }

    static func vm(_ handle: VixHandle) -> VirtualMachine? { Handles.shared.get(handle, as: VMObject.self)?.vm }

    static func invalidHandle(_ what: String, callback: VixEventProc?, clientData: UnsafeMutableRawPointer?) -> VixHandle {
        let error = VMDriverError(.invalidParameter, "\(what) is not a valid handle")
        return start(callback: callback, clientData: clientData) { _ throws(VMDriverError) in throw error }
    }

    /// The libvirt URI VixHost_Connect's hostName means: NULL or "" is this machine's
    /// qemu:///system; a libvirt URI is used as it is; a host name (with hostPort) is reached
    /// over TLS, as VIX's own remote connections are encrypted.
    static func uri(hostName: String?, port: Int32) throws(VMDriverError) -> String {
        guard let hostName, !hostName.isEmpty else { return "qemu:///system" }
        if hostName.contains("://") { return hostName }
        let destination = try MigrationDestination(parsing: port > 0 ? "\(hostName):\(port)" : hostName)
        let host = destination.kind == .ipv6 ? "[\(destination.host)]" : destination.host
        return "qemu+tls://\(host)\(destination.port.map { ":\($0)" } ?? "")/system"
    }

    /// VIX_POWERSTATE_* bits for a VMDriver state.
    static func powerState(_ state: VMState) -> Int32 {
        switch state {
        case .running: 0x0008
        case .paused: 0x0008 | 0x0200
        case .shuttingDown: 0x0008 | 0x0001
        case .shutOff, .crashed: 0x0002
        case .suspendedToDisk: 0x0020
        case .guestSuspended: 0x0008 | 0x0020
        case .unknown: 0
        }
    }
}

extension APIJob {
    /// The job's VIX error once it has ended; VIX_E_UNFINISHED_JOB before.
    var vixError: VixError {
        guard let outcome = current else { return Vix.unfinishedJob }
        switch outcome {
        case .success: return Vix.ok
        case .failure(let error):
            if let specific = error.cause as? Vix.Failure { return specific.vix }
            return Vix.error(error, state: wrongStateError, cancelled: isCancelRequested)
        }
    }
}

/// A failure with a VIX error of its own (VIX_E_FILE_NOT_FOUND, VIX_E_VM_IS_RUNNING …).
func vixFailure(_ vix: VixError, _ error: VMDriverError) -> VMDriverError {
    VMDriverError(error.code, error.message, cause: Vix.Failure(vix, error))
}

// MARK: - Host

@_cdecl("VixHost_Connect")
public func VixHost_Connect(
    _ apiVersion: Int32, _ hostType: Int32, _ hostName: UnsafePointer<CChar>?, _ hostPort: Int32,
    _ userName: UnsafePointer<CChar>?, _ password: UnsafePointer<CChar>?, _ options: Int32, _ propertyList: Int32,
    _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let name = text(hostName)
    let user = text(userName)
    let secret = text(password)
    return Vix.start(callback: callback, clientData: clientData) { _ throws(VMDriverError) in
        let uri: String
        do throws(VMDriverError) {
            uri = try Vix.uri(hostName: name, port: hostPort)
        } catch {
            throw vixFailure(Vix.invalidHostName, error)
        }
        let credentials = (user != nil || secret != nil) ? Host.Credentials(username: user, password: secret) : nil
        do throws(VMDriverError) {
            let host = try await Host.connect(uri, credentials: credentials)
            return .handle(Handles.shared.add(HostObject(host: host, provider: hostType)))
        } catch {
            throw vixFailure(Vix.cannotConnectToHost, error)
        }
    }
}

@_cdecl("VixHost_Disconnect")
public func VixHost_Disconnect(_ hostHandle: VixHandle) {
    guard let object = Handles.shared.get(hostHandle, as: HostObject.self) else { return }
    Handles.shared.release(hostHandle)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        try? await object.host.close()
        done.signal()
    }
    done.wait()
}

/// The host handle's VM for a .vmx: registered (or found) from the file.
private func openVM(_ hostHandle: VixHandle, _ path: String?) async throws(VMDriverError) -> APIJob.Payload {
    guard let host = Handles.shared.get(hostHandle, as: HostObject.self)?.host else {
        throw vixFailure(Vix.invalidHandle, VMDriverError(.invalidParameter, "\(hostHandle) is not a host handle"))
    }
    guard let path, !path.isEmpty else {
        throw VMDriverError(.invalidParameter, "no .vmx path given")
    }
    do throws(VMDriverError) {
        let vm = try await host.open(path)
        return .handle(Handles.shared.add(VMObject(vm: vm)))
    } catch {
        let missing = path.hasPrefix("/") && !host.isRemote && !FileManager.default.fileExists(atPath: path)
        throw vixFailure(missing ? Vix.fileNotFound : error.code == .invalidParameter ? Vix.vmNotFound : Vix.error(error), error)
    }
}

@_cdecl("VixHost_RegisterVM")
public func VixHost_RegisterVM(
    _ hostHandle: VixHandle, _ vmxFilePath: UnsafePointer<CChar>?, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let path = text(vmxFilePath)
    return Vix.start(callback: callback, clientData: clientData) { _ throws(VMDriverError) in
        _ = try await openVM(hostHandle, path)
        return .none
    }
}

@_cdecl("VixHost_UnregisterVM")
public func VixHost_UnregisterVM(
    _ hostHandle: VixHandle, _ vmxFilePath: UnsafePointer<CChar>?, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let path = text(vmxFilePath)
    return Vix.start(callback: callback, clientData: clientData, state: Vix.vmIsRunning) { _ throws(VMDriverError) in
        guard case .handle(let handle) = try await openVM(hostHandle, path), let vm = Vix.vm(handle) else { return .none }
        defer { Handles.shared.release(handle) }
        // Unregister keeps every file, as VIX's does.
        _ = try await vm.delete(withStorage: false)
        return .none
    }
}

@_cdecl("Vix_PumpEvents")
public func Vix_PumpEvents(_ hostHandle: VixHandle, _ options: Int32) {
    // Callbacks run on VMDriver's threads: there is nothing to pump.
}

// MARK: - VM

@_cdecl("VixVM_Open")
public func VixVM_Open(
    _ hostHandle: VixHandle, _ vmxFilePathName: UnsafePointer<CChar>?, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let path = text(vmxFilePathName)
    return Vix.start(callback: callback, clientData: clientData) { _ throws(VMDriverError) in
        try await openVM(hostHandle, path)
    }
}

/// A VM call as a VIX job: `body` gets the VM, or the job fails with VIX_E_INVALID_HANDLE.
private func vmJob(
    _ vmHandle: VixHandle, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?, state: VixError,
    _ body: @escaping @Sendable (VirtualMachine, APIJob) async throws(VMDriverError) -> APIJob.Payload
) -> VixHandle {
    Vix.start(callback: callback, clientData: clientData, state: state) { job throws(VMDriverError) in
        guard let vm = Vix.vm(vmHandle) else {
            throw vixFailure(Vix.invalidHandle, VMDriverError(.invalidParameter, "\(vmHandle) is not a VM handle"))
        }
        return try await body(vm, job)
    }
}

@_cdecl("VixVM_PowerOn")
public func VixVM_PowerOn(
    _ vmHandle: VixHandle, _ options: Int32, _ propertyList: Int32, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, _ throws(VMDriverError) in
        // VIX_VMPOWEROP_LAUNCH_GUI asks for a console window: a KVM host has none to open.
        try await vm.start()
        if options & 0x1000 != 0 { try await vm.suspend() }  // VIX_VMPOWEROP_START_VM_PAUSED
        return .none
    }
}

@_cdecl("VixVM_PowerOff")
public func VixVM_PowerOff(
    _ vmHandle: VixHandle, _ options: Int32, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmNotRunning) { vm, job throws(VMDriverError) in
        if options & 0x0004 != 0 {  // VIX_VMPOWEROP_FROM_GUEST: ask the guest (ACPI).
            _ = try await job.follow(try await vm.shutdown())
        } else {
            try await vm.destroy()
        }
        return .none
    }
}

@_cdecl("VixVM_Suspend")
public func VixVM_Suspend(
    _ vmHandle: VixHandle, _ options: Int32, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmNotRunning) { vm, _ throws(VMDriverError) in
        try await vm.save()
        return .none
    }
}

@_cdecl("VixVM_Pause")
public func VixVM_Pause(
    _ vmHandle: VixHandle, _ options: Int32, _ propertyList: Int32, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmNotRunning) { vm, _ throws(VMDriverError) in
        try await vm.suspend()
        return .none
    }
}

@_cdecl("VixVM_Unpause")
public func VixVM_Unpause(
    _ vmHandle: VixHandle, _ options: Int32, _ propertyList: Int32, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmNotRunning) { vm, _ throws(VMDriverError) in
        try await vm.resume()
        return .none
    }
}

@_cdecl("VixVM_Delete")
public func VixVM_Delete(
    _ vmHandle: VixHandle, _ options: Int32, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, _ throws(VMDriverError) in
        _ = try await vm.delete(withStorage: options & 0x0002 != 0)  // VIX_VMDELETE_DISK_FILES
        return .none
    }
}

@_cdecl("VixVM_Clone")
public func VixVM_Clone(
    _ vmHandle: VixHandle, _ snapshotHandle: VixHandle, _ cloneType: Int32, _ destConfigPathName: UnsafePointer<CChar>?,
    _ options: Int32, _ propertyList: Int32, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let destination = text(destConfigPathName)
    // With a suspended VM, a linked clone is VIX_E_VM_IS_RUNNING (its memory state would be lost).
    return vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, job throws(VMDriverError) in
        guard cloneType == 0 || cloneType == 1 else {
            throw VMDriverError(
                .invalidParameter, "clone type \(cloneType) is neither VIX_CLONETYPE_FULL nor VIX_CLONETYPE_LINKED")
        }
        guard let destination, destination.hasPrefix("/") else {
            throw VMDriverError(.invalidParameter, "destConfigPathName must be an absolute path of the clone's .vmx")
        }
        var snapshot: String?
        if snapshotHandle != 0 {
            snapshot = try snapshotName(snapshotHandle)
        }
        // The clone's name is the .vmx's, its disks go in the .vmx's folder (made if missing,
        // as VMware makes it), and opening that path later finds the clone.
        let url = URL(fileURLWithPath: destination)
        let name = url.deletingPathExtension().lastPathComponent
        let folder = url.deletingLastPathComponent().path
        let vmxPath = url.pathExtension.lowercased() == "vmx" ? destination : destination + ".vmx"
        var createdFolder = false
        if !vm.host.isRemote && !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                createdFolder = true
            } catch {
                throw VMDriverError(.invalidParameter, "cannot make the clone's folder \(folder): \(error.localizedDescription)")
            }
        }
        do throws(VMDriverError) {
            let clone = try await job.follow(
                try await vm.clone(name: name, type: cloneType == 1 ? .linked : .full, snapshot: snapshot, destination: vmxPath))
            return .handle(Handles.shared.add(VMObject(vm: clone)))
        } catch {
            if createdFolder { try? FileManager.default.removeItem(atPath: folder) }
            let exists = error.code == .invalidParameter && error.message.contains("already exists")
            throw exists ? vixFailure(Vix.fileAlreadyExists, error) : error
        }
    }
}

// MARK: - Snapshots

/// The VM's snapshots, or a VIX error for a bad handle.
private func snapshots(_ vmHandle: VixHandle) -> Result<(VirtualMachine, [SnapshotInfo]), VMDriverError> {
    guard let vm = Vix.vm(vmHandle) else {
        return .failure(vixFailure(Vix.invalidHandle, VMDriverError(.invalidParameter, "\(vmHandle) is not a VM handle")))
    }
    let box = ResultBox<[SnapshotInfo]>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do throws(VMDriverError) { box.set(.success(try await vm.snapshots())) } catch { box.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    return box.get().map { (vm, $0) }
}

/// Carries a result from a task to a waiting C thread.
final class ResultBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<Value, VMDriverError>?
    func set(_ result: Result<Value, VMDriverError>) {
        lock.lock()
        value = result
        lock.unlock()
    }
    func get() -> Result<Value, VMDriverError> {
        lock.lock()
        defer { lock.unlock() }
        return value ?? .failure(VMDriverError(.failed, "no result"))
    }
}

/// Runs an async VMDriver call to its end on the calling C thread (the synchronous VIX calls).
func blockingCall<Value: Sendable>(_ body: @escaping @Sendable () async throws(VMDriverError) -> Value) -> Result<
    Value, VMDriverError
> {
    let box = ResultBox<Value>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do throws(VMDriverError) { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    return box.get()
}

private func vixCode(_ error: VMDriverError) -> VixError {
    (error.cause as? Vix.Failure)?.vix ?? Vix.error(error)
}

/// The roots among a VM's snapshots: VMDriver's are one chain, oldest first, so one root.
private func roots(_ list: [SnapshotInfo]) -> [SnapshotInfo] { list.first.map { [$0] } ?? [] }

@_cdecl("VixVM_GetNumRootSnapshots")
public func VixVM_GetNumRootSnapshots(_ vmHandle: VixHandle, _ result: UnsafeMutablePointer<Int32>?) -> VixError {
    switch snapshots(vmHandle) {
    case .success(let (_, list)):
        result?.pointee = Int32(roots(list).count)
        return Vix.ok
    case .failure(let error): return vixCode(error)
    }
}

@_cdecl("VixVM_GetRootSnapshot")
public func VixVM_GetRootSnapshot(_ vmHandle: VixHandle, _ index: Int32, _ snapshot: UnsafeMutablePointer<Int32>?) -> VixError {
    switch snapshots(vmHandle) {
    case .success(let (vm, list)):
        let roots = roots(list)
        guard index >= 0, Int(index) < roots.count else { return Vix.invalidArgument }
        snapshot?.pointee = Handles.shared.add(SnapshotObject(vm: vm, snapshot: roots[Int(index)]))
        return Vix.ok
    case .failure(let error): return vixCode(error)
    }
}

@_cdecl("VixVM_GetCurrentSnapshot")
public func VixVM_GetCurrentSnapshot(_ vmHandle: VixHandle, _ snapshot: UnsafeMutablePointer<Int32>?) -> VixError {
    switch snapshots(vmHandle) {
    case .success(let (vm, list)):
        guard let current = list.first(where: \.isCurrent) ?? list.last else { return Vix.snapshotNotFound }
        snapshot?.pointee = Handles.shared.add(SnapshotObject(vm: vm, snapshot: current))
        return Vix.ok
    case .failure(let error): return vixCode(error)
    }
}

@_cdecl("VixVM_GetNamedSnapshot")
public func VixVM_GetNamedSnapshot(
    _ vmHandle: VixHandle, _ name: UnsafePointer<CChar>?, _ snapshot: UnsafeMutablePointer<Int32>?
) -> VixError {
    guard let name = text(name) else { return Vix.invalidArgument }
    switch snapshots(vmHandle) {
    case .success(let (vm, list)):
        // VIX names a snapshot by its display name, or by a path of names from the root.
        let leaf = name.split(separator: "/").last.map(String.init) ?? name
        guard let found = list.first(where: { $0.name == leaf }) else { return Vix.snapshotNotFound }
        snapshot?.pointee = Handles.shared.add(SnapshotObject(vm: vm, snapshot: found))
        return Vix.ok
    case .failure(let error): return vixCode(error)
    }
}

@_cdecl("VixVM_CreateSnapshot")
public func VixVM_CreateSnapshot(
    _ vmHandle: VixHandle, _ name: UnsafePointer<CChar>?, _ description: UnsafePointer<CChar>?, _ options: Int32,
    _ propertyList: Int32, _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    let name = text(name)
    return vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, _ throws(VMDriverError) in
        guard let name, !name.isEmpty else { throw VMDriverError(.invalidParameter, "a snapshot needs a name") }
        if options & 0x0002 != 0 {  // VIX_SNAPSHOT_INCLUDE_MEMORY
            throw VMDriverError(
                .notSupported,
                "VMDriver's snapshots are of the disks only (external, libvirt 9.0): VIX_SNAPSHOT_INCLUDE_MEMORY is not supported"
            )
        }
        do throws(VMDriverError) {
            let info = try await vm.createSnapshot(name: name)
            return .handle(Handles.shared.add(SnapshotObject(vm: vm, snapshot: info)))
        } catch {
            throw error.message.contains("already") ? vixFailure(Vix.snapshotExists, error) : error
        }
    }
}

@_cdecl("VixVM_RemoveSnapshot")
public func VixVM_RemoveSnapshot(
    _ vmHandle: VixHandle, _ snapshotHandle: VixHandle, _ options: Int32, _ callback: VixEventProc?,
    _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, _ throws(VMDriverError) in
        try await vm.deleteSnapshot(name: try snapshotName(snapshotHandle))
        return .none
    }
}

@_cdecl("VixVM_RevertToSnapshot")
public func VixVM_RevertToSnapshot(
    _ vmHandle: VixHandle, _ snapshotHandle: VixHandle, _ options: Int32, _ propertyList: Int32,
    _ callback: VixEventProc?, _ clientData: UnsafeMutableRawPointer?
) -> VixHandle {
    vmJob(vmHandle, callback, clientData, state: Vix.vmIsRunning) { vm, _ throws(VMDriverError) in
        // A disk-only snapshot has no memory: the VM stays off after the revert, whatever the
        // options say about powering on.
        _ = try await vm.revert(toSnapshot: try snapshotName(snapshotHandle))
        return .none
    }
}

/// The name of the snapshot a handle holds; VIX_E_INVALID_HANDLE for any other handle.
private func snapshotName(_ handle: VixHandle) throws(VMDriverError) -> String {
    guard let object = Handles.shared.get(handle, as: SnapshotObject.self) else {
        throw vixFailure(Vix.invalidHandle, VMDriverError(.invalidParameter, "\(handle) is not a snapshot handle"))
    }
    return object.snapshot.name
}

// MARK: - Jobs, properties, handles

@_cdecl("vmdriver_vix_job_wait")
public func vmdriver_vix_job_wait(_ jobHandle: VixHandle) -> VixError {
    guard let job = Handles.shared.get(jobHandle, as: APIJob.self) else { return Vix.invalidHandle }
    _ = job.wait()
    return job.vixError
}

@_cdecl("VixJob_CheckCompletion")
public func VixJob_CheckCompletion(_ jobHandle: VixHandle, _ complete: UnsafeMutablePointer<CChar>?) -> VixError {
    guard let job = Handles.shared.get(jobHandle, as: APIJob.self) else { return Vix.invalidHandle }
    complete?.pointee = job.current == nil ? 0 : 1
    return Vix.ok
}

@_cdecl("VixJob_GetError")
public func VixJob_GetError(_ jobHandle: VixHandle) -> VixError {
    guard let job = Handles.shared.get(jobHandle, as: APIJob.self) else { return Vix.invalidHandle }
    return job.vixError
}

@_cdecl("vmdriver_vix_job_property")
public func vmdriver_vix_job_property(_ jobHandle: VixHandle, _ property: Int32, _ out: UnsafeMutableRawPointer?) -> VixError {
    vmdriver_vix_property(jobHandle, property, out)
}

/// Writes one property of any handle to `out`, typed as VIX types it.
@_cdecl("vmdriver_vix_property")
public func vmdriver_vix_property(_ handle: VixHandle, _ property: Int32, _ out: UnsafeMutableRawPointer?) -> VixError {
    guard let out else { return Vix.invalidArgument }
    if let job = Handles.shared.get(handle, as: APIJob.self) {
        switch property {
        case 3010:  // VIX_PROPERTY_JOB_RESULT_HANDLE: a reference of the caller's own.
            guard case .success(let payload)? = job.current else {
                return job.current == nil ? Vix.unfinishedJob : job.vixError
            }
            guard case .handle(let result) = payload else {
                out.assumingMemoryBound(to: Int32.self).pointee = 0
                return Vix.ok
            }
            Handles.shared.retain(result)
            out.assumingMemoryBound(to: Int32.self).pointee = result
        case 3000:  // VIX_PROPERTY_JOB_RESULT_ERROR_CODE
            out.assumingMemoryBound(to: UInt64.self).pointee = job.vixError
        case 3002:  // VIX_PROPERTY_JOB_RESULT_USER_MESSAGE
            let message: String
            if case .failure(let error)? = job.current { message = error.message } else { message = "" }
            out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString(message)
        default: return Vix.unrecognizedProperty
        }
        return Vix.ok
    }
    if let host = Handles.shared.get(handle, as: HostObject.self) {
        switch property {
        case 50: out.assumingMemoryBound(to: Int32.self).pointee = host.provider  // VIX_PROPERTY_HOST_HOSTTYPE
        case 51: out.assumingMemoryBound(to: Int32.self).pointee = 1  // VIX_PROPERTY_HOST_API_VERSION
        default: return Vix.unrecognizedProperty
        }
        return Vix.ok
    }
    if let vm = Vix.vm(handle) {
        let details: VMDetails
        switch blockingCall({ () async throws(VMDriverError) in try await vm.details() }) {
        case .success(let value): details = value
        case .failure(let error): return vixCode(error)
        }
        switch property {
        case 101: out.assumingMemoryBound(to: Int32.self).pointee = Int32(details.vcpus)  // NUM_VCPUS
        case 106: out.assumingMemoryBound(to: Int32.self).pointee = Int32(details.memoryMiB)  // MEMORY_SIZE (MB)
        case 129: out.assumingMemoryBound(to: Int32.self).pointee = Vix.powerState(details.state)  // POWER_STATE
        case 196: out.assumingMemoryBound(to: CChar.self).pointee = details.state.isActive ? 1 : 0  // IS_RUNNING
        case 107, 128: out.assumingMemoryBound(to: CChar.self).pointee = 0  // READ_ONLY, IN_VMTEAM
        case 152: out.assumingMemoryBound(to: Int32.self).pointee = 0x0001  // TOOLS_STATE: unknown
        case 103:  // VMX_PATHNAME: the .vmx it was opened from or cloned to; "" for others.
            let path = blockingCall({ () async throws(VMDriverError) in try await vm.vmxPath() })
            out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString((try? path.get()) ?? "")
        case 0x564D_0001:
            out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString(details.name)
        case 0x564D_0002:
            out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString(
                details.uuid.uuidString.lowercased())
        default: return Vix.unrecognizedProperty
        }
        return Vix.ok
    }
    if let snapshot = Handles.shared.get(handle, as: SnapshotObject.self) {
        switch property {
        case 4200:
            out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString(snapshot.snapshot.name)
        case 4201: out.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self).pointee = mallocString("")
        case 4205:
            let running = snapshot.snapshot.vmState == "running"
            out.assumingMemoryBound(to: Int32.self).pointee = running ? 0x0008 : 0x0002
        default: return Vix.unrecognizedProperty
        }
        return Vix.ok
    }
    return Vix.invalidHandle
}

@_cdecl("Vix_GetPropertyType")
public func Vix_GetPropertyType(_ handle: VixHandle, _ property: Int32, _ type: UnsafeMutablePointer<Int32>?) -> VixError {
    let kind: Int32? =
        switch property {
        case 50, 51, 101, 106, 129, 152, 4205: 1  // integer
        case 103, 3002, 4200, 4201, 0x564D_0001, 0x564D_0002: 2  // string
        case 107, 128, 196: 3  // bool
        case 3010: 4  // handle
        case 3000: 5  // int64
        default: nil
        }
    guard let kind else { return Vix.unrecognizedProperty }
    type?.pointee = kind
    return Vix.ok
}

@_cdecl("Vix_ReleaseHandle")
public func Vix_ReleaseHandle(_ handle: VixHandle) {
    guard handle != 0 else { return }
    Handles.shared.release(handle)
}

@_cdecl("Vix_AddRefHandle")
public func Vix_AddRefHandle(_ handle: VixHandle) { Handles.shared.retain(handle) }

@_cdecl("Vix_GetHandleType")
public func Vix_GetHandleType(_ handle: VixHandle) -> Int32 {
    if Handles.shared.get(handle, as: HostObject.self) != nil { return Vix.handleTypeHost }
    if Handles.shared.get(handle, as: VMObject.self) != nil { return Vix.handleTypeVM }
    if Handles.shared.get(handle, as: APIJob.self) != nil { return Vix.handleTypeJob }
    if Handles.shared.get(handle, as: SnapshotObject.self) != nil { return Vix.handleTypeSnapshot }
    return 0
}

@_cdecl("Vix_FreeBuffer")
public func Vix_FreeBuffer(_ pointer: UnsafeMutableRawPointer?) { free(pointer) }

@_cdecl("Vix_GetErrorText")
public func Vix_GetErrorText(_ error: VixError, _ locale: UnsafePointer<CChar>?) -> UnsafePointer<CChar>? {
    VixErrorText.text(for: error & 0xFFFF)
}

/// Vix_GetErrorText's strings: static, never freed, one per code.
enum VixErrorText {
    static let texts: [UInt64: String] = [
        0: "no error",
        1: "the operation failed",
        2: "out of memory",
        3: "a parameter is invalid",
        4: "no such file",
        5: "the object is busy with another operation",
        6: "not supported on this host",
        10: "cancelled",
        12: "the file exists already",
        23: "it exists already",
        29: "the job is still running",
        1000: "not a valid handle",
        1001: "not an operation of this kind of handle",
        3006: "the VM is not running",
        3007: "the VM is running (or suspended with its memory saved)",
        4000: "no such VM",
        6000: "no such property on this handle",
        13003: "no such snapshot",
        13004: "a snapshot of that name exists already",
        18000: "the host cannot be reached",
        18002: "the host name is not valid",
    ]
    nonisolated(unsafe) static let pointers: [UInt64: UnsafePointer<CChar>] = texts.mapValues { UnsafePointer(strdup($0)!) }
    nonisolated(unsafe) static let unknown = UnsafePointer(strdup("unknown error code")!)

    static func text(for code: UInt64) -> UnsafePointer<CChar> { pointers[code] ?? unknown }
}
