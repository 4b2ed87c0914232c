import Foundation
internal import Libvirt
import Synchronization

/// Reads and writes `OperationRecord`s in a domain's metadata. Blocking (libvirt calls).
enum OperationRecords {
    /// Where the record goes: the running domain and, if it has one, its definition (so the
    /// record survives a shutdown, as in a cold migration); only the definition when it is off.
    static func impact(of domain: Domain) throws -> Domain.ModificationImpact {
        guard try domain.isActive() else { return .config }
        return try domain.isPersistent() ? [.live, .config] : .live
    }

    /// The domain's record, nil when there is none.
    static func read(_ domain: Domain) throws -> OperationRecord? {
        // One side at a time: libvirt refuses live and config together for a read.
        let side: Domain.ModificationImpact = try domain.isActive() ? .live : .config
        return try domain.metadata(.element, uri: OperationRecord.namespace, side).flatMap(OperationRecord.init(xml:))
    }

    static func write(_ record: OperationRecord, to domain: Domain) throws {
        try domain.setMetadata(
            .element, record.xml, key: OperationRecord.prefix, uri: OperationRecord.namespace, try impact(of: domain))
    }

    /// Removes the record; true when the domain has none afterwards. A domain that is gone has
    /// none.
    @discardableResult
    static func remove(from domain: Domain) -> Bool {
        do {
            try domain.setMetadata(.element, nil, uri: OperationRecord.namespace, try impact(of: domain))
            return true
        } catch let error as LibvirtError where error.code == .noDomain || error.code == .noDomainMetadata {
            return true
        } catch {
            return false
        }
    }

    /// Clone records live beside the VM's own record, one element per clone (clones of one VM
    /// run side by side), keyed by the clone's UUID.
    static let clones = KeyedMetadata(namespacePrefix: "http://vmdriver.invalid/xmlns/clone/1/", prefix: "vmdclone")

    /// The records of the clones being made of `domain` (or left by a clone whose process died).
    static func readClones(_ domain: Domain) throws -> [OperationRecord] {
        try clones.elements(of: domain).compactMap { OperationRecord(xml: $0.element.serialized()) }
    }

    static func writeClone(_ record: OperationRecord, to domain: Domain) throws {
        guard let clone = record.cloneUUID else { return }
        try clones.write(record.xml, key: clone, to: domain)
    }

    /// Removes a clone's record; true when the domain holds it no longer.
    @discardableResult
    static func removeClone(_ clone: UUID, from domain: Domain) -> Bool { clones.remove(clone, from: domain) }

    /// Why `domain` cannot take a new operation, given the record it holds: code 5 naming the
    /// operation, who runs it and since when; for a record whose owner is gone, how to clean up.
    static func busy(_ record: OperationRecord, label: String, vmName: String) -> VMDriverError {
        let since = record.started.formatted(.iso8601)
        let abort = "vmctl abort \(vmName)"
        switch record.ownerStatus {
        case .alive:
            return VMDriverError(
                .invalidState,
                "\(label) is busy: \(record.ownerDescription) has been running \(record.operationDescription) since \(since); "
                    + "wait for it to end, or end it with `\(abort)`")
        case .gone:
            return VMDriverError(
                .invalidState,
                "\(label) holds the record of \(record.operationDescription) that \(record.ownerDescription) started at \(since), "
                    + "and that process is gone: run `\(abort)` to end what is left of it and remove what it made on the target")
        case .unknown:
            return VMDriverError(
                .invalidState,
                "\(label) is busy: \(record.ownerDescription) started \(record.operationDescription) at \(since); this machine "
                    + "cannot tell whether it still runs: wait for it, or run `\(abort) --force` once you know it is gone")
        }
    }

    /// Writes `record` unless the domain holds one already (then code 5, see `busy`). Claims
    /// from this machine are serialised by a lock file, so two processes cannot both see no
    /// record and both write theirs; libvirt's metadata has no compare-and-set, so two machines
    /// racing within milliseconds are not kept apart (libvirt's own job lock still refuses the
    /// second migration).
    static func claim(
        _ record: OperationRecord, domain: Domain, uuid: UUID, label: String, vmName: String
    ) throws {
        let lock = try LockFile(uuid: uuid)
        defer { lock.unlock() }
        if let held = try read(domain) { throw busy(held, label: label, vmName: vmName) }
        try write(record, to: domain)
    }
}

/// An exclusive `flock` on a file named after a VM's UUID, held for a few milliseconds.
private struct LockFile {
    let descriptor: Int32

    init(uuid: UUID) throws {
        let folder = FileManager.default.fileExists(atPath: "/run/lock") ? "/run/lock" : NSTemporaryDirectory()
        let path = "\(folder)/vmdriver-\(uuid.uuidString.lowercased()).lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw VMDriverError(.failed, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
    }

    func unlock() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// The record of one operation this process runs, kept up to date as it makes things on the
/// target, and removed when the operation commits or has rolled back.
final class OperationClaim: Sendable {
    private let record: Mutex<OperationRecord>
    let domain: Domain
    let host: Host
    /// False where the driver keeps no metadata: then there is nothing to update or remove.
    let recorded: Bool

    private init(record: OperationRecord, domain: Domain, host: Host, recorded: Bool) {
        self.record = Mutex(record)
        self.domain = domain
        self.host = host
        self.recorded = recorded
    }

    /// Code 5 when another operation's record is on `vm` (with `clones`, also a clone's: a clone
    /// being made, or one whose process died before it rolled back); changes nothing.
    static func check(_ vm: VirtualMachine, clones: Bool = true) async throws(VMDriverError) {
        let (label, name) = (vm.label, vm.name)
        let held: OperationRecord?
        do throws(VMDriverError) {
            held = try await vm.host.blocking("cannot read the operation record of \(label)") { [domain = vm.domain] _ in
                try OperationRecords.read(domain) ?? (clones ? OperationRecords.readClones(domain).first : nil)
            }
        } catch  where unsupported(error) {
            return
        }
        if let held { throw OperationRecords.busy(held, label: label, vmName: name) }
    }

    /// A driver without domain metadata (not QEMU's, nor the test driver's) keeps no record:
    /// its operations run unrecorded, as before records existed.
    static func unsupported(_ error: VMDriverError) -> Bool {
        [.noSupport, .argumentUnsupported, .operationUnsupported].contains(error.libvirtError?.code)
    }

    /// Claims `vm` for `operation` (code 5 when another operation holds it).
    static func claim(
        _ vm: VirtualMachine, operation: JobKind, target: String? = nil, targetName: String? = nil
    ) async throws(VMDriverError) -> OperationClaim {
        var record = try OperationRecord(operation: operation, source: vm.host.name, target: target)
        record.targetName = targetName
        let (label, name, uuid) = (vm.label, vm.name, vm.uuid)
        do throws(VMDriverError) {
            try await vm.host.blocking("cannot record the \(operation.rawValue) of \(label)") { [domain = vm.domain, record] _ in
                try OperationRecords.claim(record, domain: domain, uuid: uuid, label: label, vmName: name)
            }
        } catch  where unsupported(error) {
            vm.host.logger.warning(
                "\(label): the \(vm.host.driver) driver keeps no domain metadata: the \(operation.rawValue) runs unrecorded")
            return OperationClaim(record: record, domain: vm.domain, host: vm.host, recorded: false)
        }
        return OperationClaim(record: record, domain: vm.domain, host: vm.host, recorded: true)
    }

    /// Changes the record and writes it again. Best effort: the operation goes on if libvirt
    /// refuses (the record then lists less than was made).
    func update(_ change: @Sendable (inout OperationRecord) -> Void) async {
        let updated = record.withLock {
            change(&$0)
            return $0
        }
        guard recorded else { return }
        let failed =
            await
            (try? host.blocking("", evenIfCancelled: true) { [domain] _ in
                try OperationRecords.write(updated, to: domain)
            }) == nil
        if failed { host.logger.warning("could not update the operation record on \(host.label)") }
    }

    /// Removes the record from the VM and, when the migration moved it (the record travels in
    /// the domain's metadata), from the VM on the target.
    func release(target: Host? = nil, name: String? = nil) async {
        guard recorded else { return }
        _ = try? await host.blocking("", evenIfCancelled: true) { [domain] _ in OperationRecords.remove(from: domain) }
        if let target, let name {
            _ = try? await target.blocking("", evenIfCancelled: true) { connection in
                if let moved = try? connection.lookupDomain(name: name) { OperationRecords.remove(from: moved) }
            }
        }
    }
}
