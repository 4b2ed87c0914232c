import Foundation
import VMDriver

// CIM_VirtualSystemMigrationService over VMDriver (cim_migration.h). A CIM_Handle is the
// handle table's integer carried in a pointer; 0 (NULL) is no handle.

private func handle(_ pointer: OpaquePointer?) -> Int32 { Int32(truncatingIfNeeded: Int(bitPattern: UnsafeRawPointer(pointer))) }
private func pointer(_ handle: Int32) -> OpaquePointer? { OpaquePointer(bitPattern: Int(handle)) }

/// The calling thread's last error text (CIM_GetLastErrorDescription).
private let lastErrorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

private func fail(_ error: VMDriverError) -> UInt32 {
    free(pthread_getspecific(lastErrorKey))
    pthread_setspecific(lastErrorKey, strdup(error.message))
    return error.code.rawValue
}

private func serviceHost(_ pointer: OpaquePointer?) throws(VMDriverError) -> VMDriver.Host {
    guard let host = Handles.shared.get(handle(pointer), as: HostObject.self)?.host else {
        throw VMDriverError(.invalidParameter, "the service handle is not one CIM_Connect returned")
    }
    return host
}

/// `…ComputerSystem.CreationClassName="…",Name="UUID"` → the Name key's value; a bare name or
/// UUID as it is.
func computerSystemName(_ text: String) throws(VMDriverError) -> String {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard trimmed.contains("=") else {
        guard !trimmed.isEmpty else { throw VMDriverError(.invalidParameter, "ComputerSystem is empty") }
        return trimmed
    }
    guard let match = trimmed.firstMatch(of: /(?:^|[.,])Name\s*=\s*"((?:[^"\\]|\\.)*)"/) else {
        throw VMDriverError(.invalidParameter, "ComputerSystem '\(trimmed)' is an object path without a Name key")
    }
    return String(match.1).replacingOccurrences(of: "\\\"", with: "\"")
}

private func request(
    _ service: OpaquePointer?, _ computerSystem: UnsafePointer<CChar>?, _ destinationHost: UnsafePointer<CChar>?,
    _ migrationSettingData: UnsafePointer<CChar>?, _ newSystemSettingData: UnsafePointer<CChar>?,
    _ newResourceSettingData: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int
) throws(VMDriverError) -> (VMDriver.Host, String, MigrationDestination, MigrationOptions) {
    let host = try serviceHost(service)
    guard let system = text(computerSystem) else { throw VMDriverError(.invalidParameter, "no ComputerSystem given") }
    guard let destination = text(destinationHost) else { throw VMDriverError(.invalidParameter, "no DestinationHost given") }
    let parsed = try MigrationDestination(parsing: destination)
    var resources: [String] = []
    for index in 0..<count {
        guard let item = newResourceSettingData?[index] else {
            throw VMDriverError(.invalidParameter, "NewResourceSettingData[\(index)] is NULL")
        }
        resources.append(String(cString: item))
    }
    let cim = try CIMMigrationRequest(
        migrationSettingData: text(migrationSettingData), newSystemSettingData: text(newSystemSettingData),
        newResourceSettingData: resources)
    return (host, try computerSystemName(system), parsed, cim.options)
}

@_cdecl("CIM_Connect")
public func CIM_Connect(_ uri: UnsafePointer<CChar>?, _ service: UnsafeMutablePointer<OpaquePointer?>?) -> UInt32 {
    let target = text(uri) ?? "qemu:///system"
    switch blockingCall({ () async throws(VMDriverError) in try await Host.connect(target) }) {
    case .success(let host):
        service?.pointee = pointer(Handles.shared.add(HostObject(host: host, provider: 0)))
        return 0
    case .failure(let error): return fail(error)
    }
}

@_cdecl("CIM_MigrateVirtualSystemToHost")
public func CIM_MigrateVirtualSystemToHost(
    _ service: OpaquePointer?, _ computerSystem: UnsafePointer<CChar>?, _ destinationHost: UnsafePointer<CChar>?,
    _ migrationSettingData: UnsafePointer<CChar>?, _ newSystemSettingData: UnsafePointer<CChar>?,
    _ newResourceSettingData: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ job: UnsafeMutablePointer<OpaquePointer?>?
) -> UInt32 {
    let (host, system, destination, options): (VMDriver.Host, String, MigrationDestination, MigrationOptions)
    do throws(VMDriverError) {
        (host, system, destination, options) = try request(
            service, computerSystem, destinationHost, migrationSettingData, newSystemSettingData, newResourceSettingData, count)
    } catch {
        return fail(error)
    }
    // The pre-flight runs here, synchronously: what it refuses is the method's return value,
    // with nothing moved; a move that starts is a job (4096).
    let started = blockingCall { () async throws(VMDriverError) -> Job<MigrationResult> in
        let vm = try await host.open(system)
        return try await vm.migrate(to: destination.description, options: options)
    }
    switch started {
    case .failure(let error): return fail(error)
    case .success(let migration):
        let handle = APIJob.start { job throws(VMDriverError) in
            _ = try await job.follow(migration)
            return .none
        }
        job?.pointee = pointer(handle)
        return ReturnCode.jobStarted.rawValue
    }
}

@_cdecl("CIM_CheckVirtualSystemIsMigratableToHost")
public func CIM_CheckVirtualSystemIsMigratableToHost(
    _ service: OpaquePointer?, _ computerSystem: UnsafePointer<CChar>?, _ destinationHost: UnsafePointer<CChar>?,
    _ migrationSettingData: UnsafePointer<CChar>?, _ newSystemSettingData: UnsafePointer<CChar>?,
    _ newResourceSettingData: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ isMigratable: UnsafeMutablePointer<Bool>?
) -> UInt32 {
    let (host, system, destination, options): (VMDriver.Host, String, MigrationDestination, MigrationOptions)
    do throws(VMDriverError) {
        (host, system, destination, options) = try request(
            service, computerSystem, destinationHost, migrationSettingData, newSystemSettingData, newResourceSettingData, count)
    } catch {
        return fail(error)
    }
    let checked = blockingCall { () async throws(VMDriverError) -> MigrationCheck in
        let vm = try await host.open(system)
        return await vm.checkMigration(to: destination.description, options: options)
    }
    switch checked {
    case .failure(let error): return fail(error)
    case .success(let check):
        isMigratable?.pointee = check.migratable
        if let problem = check.problems.first { _ = fail(VMDriverError(problem.code, problem.message)) }
        return 0
    }
}

@_cdecl("CIM_GetMigrationCapabilities")
public func CIM_GetMigrationCapabilities(
    _ service: OpaquePointer?, _ instance: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
)
    -> UInt32
{
    do throws(VMDriverError) {
        _ = try serviceHost(service)
    } catch {
        return fail(error)
    }
    // Migrate runs as a job (asynchronous: 2); the check answers at once (synchronous: 4).
    // Destinations: DNS names (2), IPv4 (3) and IPv6 (4) addresses.
    func array(_ name: String, _ values: [Int]) -> String {
        "<PROPERTY.ARRAY NAME=\"\(name)\" TYPE=\"uint16\"><VALUE.ARRAY>"
            + values.map { "<VALUE>\($0)</VALUE>" }.joined() + "</VALUE.ARRAY></PROPERTY.ARRAY>"
    }
    let xml =
        "<INSTANCE CLASSNAME=\"CIM_VirtualSystemMigrationCapabilities\">"
        + "<PROPERTY NAME=\"InstanceID\" TYPE=\"string\"><VALUE>VMDriver:MigrationCapabilities</VALUE></PROPERTY>"
        + "<PROPERTY NAME=\"ElementName\" TYPE=\"string\"><VALUE>VMDriver migration capabilities</VALUE></PROPERTY>"
        + array("AsynchronousMethodsSupported", [2]) + array("SynchronousMethodsSupported", [4])
        + array("DestinationHostFormatsSupported", [2, 3, 4]) + "</INSTANCE>"
    instance?.pointee = strdup(xml)
    return 0
}

@_cdecl("CIM_ConcreteJob_GetState")
public func CIM_ConcreteJob_GetState(
    _ job: OpaquePointer?, _ state: UnsafeMutablePointer<UInt16>?, _ percent: UnsafeMutablePointer<UInt16>?,
    _ errorCode: UnsafeMutablePointer<UInt16>?
) -> UInt32 {
    guard let object = Handles.shared.get(handle(job), as: APIJob.self) else {
        return fail(VMDriverError(.invalidParameter, "the job handle is not one CIM_MigrateVirtualSystemToHost returned"))
    }
    let (jobState, code) = cimState(object)
    state?.pointee = jobState
    percent?.pointee = UInt16(object.progress)
    errorCode?.pointee = code
    return 0
}

/// JobState and ErrorCode: 4 running; 7 completed (0); 8 terminated by RequestStateChange;
/// 10 exception with the migration's CIM code.
private func cimState(_ job: APIJob) -> (UInt16, UInt16) {
    switch job.current {
    case nil: (4, 0)
    case .success?: (7, 0)
    case .failure(let error)?: job.isCancelRequested ? (8, UInt16(error.code.rawValue)) : (10, UInt16(error.code.rawValue))
    }
}

@_cdecl("CIM_ConcreteJob_GetErrorDescription")
public func CIM_ConcreteJob_GetErrorDescription(_ job: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let object = Handles.shared.get(handle(job), as: APIJob.self), case .failure(let error)? = object.current else {
        return nil
    }
    return object.keep(error.message)
}

@_cdecl("CIM_ConcreteJob_Wait")
public func CIM_ConcreteJob_Wait(_ job: OpaquePointer?, _ timeout: UInt32) -> UInt32 {
    guard let object = Handles.shared.get(handle(job), as: APIJob.self) else {
        return fail(VMDriverError(.invalidParameter, "the job handle is not one CIM_MigrateVirtualSystemToHost returned"))
    }
    switch object.wait(timeout: timeout == 0 ? nil : .milliseconds(Int64(timeout))) {
    case nil: return ReturnCode.timeout.rawValue
    case .success?: return 0
    case .failure(let error)?: return fail(error)
    }
}

@_cdecl("CIM_ConcreteJob_RequestStateChange")
public func CIM_ConcreteJob_RequestStateChange(_ job: OpaquePointer?, _ requested: UInt16) -> UInt32 {
    guard let object = Handles.shared.get(handle(job), as: APIJob.self) else {
        return fail(VMDriverError(.invalidParameter, "the job handle is not one CIM_MigrateVirtualSystemToHost returned"))
    }
    switch requested {
    case 4, 5:
        // Terminate (and Kill, which VMDriver does the same way: libvirt's abort, then the
        // rollback that leaves the VM running on the source). Returns once the job has ended.
        guard object.cancel() else {
            _ = fail(VMDriverError(.invalidState, "the job has already ended"))
            return 4097
        }
        _ = object.wait()
        return 0
    case 2, 3:
        _ = fail(VMDriverError(.notSupported, "a migration job can be terminated (4), not started again or suspended"))
        return 1
    default:
        return fail(VMDriverError(.invalidParameter, "RequestedState \(requested) is not a CIM_ConcreteJob state"))
    }
}

@_cdecl("CIM_Release")
public func CIM_Release(_ handle: OpaquePointer?) {
    // The connection closes with its last reference (a running job holds one).
    let value = Int32(truncatingIfNeeded: Int(bitPattern: UnsafeRawPointer(handle)))
    if value != 0 { Handles.shared.release(value) }
}

@_cdecl("CIM_GetLastErrorDescription")
public func CIM_GetLastErrorDescription() -> UnsafePointer<CChar>? {
    pthread_getspecific(lastErrorKey).map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) }
}
