import Foundation
internal import Libvirt
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A clone's record on its source (an `OperationRecord` in a namespace of its own). It is
/// written before the clone makes anything and lists everything the clone may make: its files,
/// the temporary overlays of a running source, and the copy processes while they run. The clone
/// removes it once it has completed or rolled back in full; a clone whose process died leaves
/// it, and `VirtualMachine.abortJob()` then finishes the rollback from it.
final class CloneRecord: Sendable {
    private let record: Mutex<OperationRecord>
    private let domain: Domain
    private let host: Host
    private let label: String
    private let directory: String
    /// Set once the record is on the source; false where the driver keeps no domain metadata
    /// (the clone then runs unrecorded) or before `write`.
    private let recorded = Atomic(false)

    /// The record of `plan`, not written yet.
    init(_ plan: ClonePlan) throws(VMDriverError) {
        let source = plan.source
        var record = try OperationRecord(operation: .clone, source: source.host.name)
        record.targetName = plan.name
        record.cloneUUID = plan.uuid
        record.merges = plan.temporaryOverlays.map { OperationRecord.Merge(disk: $0.key, overlay: $0.value) }
            .sorted { $0.disk < $1.disk }
        record.files = plan.disks.map(\.target) + [plan.nvram?.target, plan.seed?.path, plan.xmlFile].compactMap { $0 }
        self.record = Mutex(record)
        (domain, host, label, directory) = (source.domain, source.host, source.label, plan.directory)
    }

    /// Writes the record on the source: one write, before the clone makes anything.
    func write() async throws(VMDriverError) {
        let name = record.withLock { $0.targetName ?? "" }
        do throws(VMDriverError) {
            try await host.blocking("cannot record the clone '\(name)' of \(label)") { [self] _ in
                // The folder is the clone's only when it does not exist yet.
                let missing = host.storage.kind(of: directory) == .missing
                let updated = record.withLock {
                    if missing { $0.files.insert(directory, at: 0) }
                    return $0
                }
                try OperationRecords.writeClone(updated, to: domain)
            }
            recorded.store(true, ordering: .releasing)
        } catch  where OperationClaim.unsupported(error) {
            host.logger.debug("\(label): the \(host.driver) driver keeps no domain metadata: the clone runs unrecorded")
        }
    }

    /// A copy process started (called on the thread that runs it, so before it copies a byte).
    func helperStarted(_ pid: pid_t) {
        guard let start = ProcessIdentity.startTime(ofPID: pid) else { return }
        change { $0.helpers.append(OperationRecord.Helper(pid: pid, startTime: start)) }
    }

    /// A copy process ended (before it is reaped: its pid is not anyone else's yet).
    func helperEnded(_ pid: pid_t) {
        change { $0.helpers.removeAll { $0.pid == pid } }
    }

    private func change(_ update: (inout OperationRecord) -> Void) {
        let updated = record.withLock {
            update(&$0)
            return $0
        }
        guard recorded.load(ordering: .acquiring) else { return }
        // Best effort: a copy process missing from the record is stopped by the clone itself
        // while it lives; only after a SIGKILL would it outlive vmctl.
        do {
            try OperationRecords.writeClone(updated, to: domain)
        } catch {
            host.logger.warning("could not update the record of clone '\(updated.targetName ?? "")': \(error)")
        }
    }

    /// Removes the record: the clone completed, or everything it made was removed.
    func release() async {
        guard recorded.load(ordering: .acquiring), let clone = record.withLock({ $0.cloneUUID }) else { return }
        _ = try? await host.blocking("", evenIfCancelled: true) { [domain] _ in
            OperationRecords.removeClone(clone, from: domain)
        }
    }
}

extension ClonePlan {
    /// Full clone of a running source: the overlay its freeze gives each disk (per device), the
    /// path `VirtualMachine.freeze` makes for `copySnapshot`.
    var temporaryOverlays: [String: String] {
        guard type == .full, snapshot == nil, sourceState.isActive else { return [:] }
        return Dictionary(
            uniqueKeysWithValues: disks.map {
                (
                    $0.source.target,
                    VirtualMachine.overlayPath(disk: $0.source, vmName: source.name, snapshot: copySnapshot)
                )
            })
    }
}

extension VirtualMachine {
    /// Finishes the rollback of a clone whose process is gone (or, with `force`, one this
    /// machine cannot tell about), from its record: stops its copy processes, merges a running
    /// source's temporary overlays back, removes the files it listed (newest first) and the
    /// record. A clone that had completed (a VM with its UUID exists) keeps everything.
    func finishClone(_ record: OperationRecord, into result: inout AbortResult) async throws(VMDriverError) {
        let what = record.operationDescription
        guard let clone = record.cloneUUID else { return }
        await stopHelpers(record, into: &result)
        let (host, domain, label) = (self.host, self.domain, self.label)
        let completed = try await host.blocking("cannot look up the clone of \(label)") { connection in
            (try? connection.lookupDomain(uuid: clone)) != nil
        }
        if completed {
            result.steps.append("\(what) had completed: it stays")
        } else {
            try await mergeBack(record, into: &result)
            let storage = host.storage
            let (removed, failed, kept) = try await host.blocking("cannot remove what \(what) made", evenIfCancelled: true) {
                _ -> ([String], [String], [String]) in
                var (removed, failed, kept): ([String], [String], [String]) = ([], [], [])
                for file in record.files.reversed() {
                    switch storage.kind(of: file) {
                    case .missing:
                        continue
                    case .directory:
                        // rmdir only: a folder that holds other files is not the clone's to empty.
                        if (try? storage.delete(file)) != nil { removed.append(file) } else { kept.append(file) }
                    case .other:
                        if (try? storage.delete(file)) != nil { removed.append(file) } else { failed.append(file) }
                    }
                }
                return (removed, failed, kept)
            }
            result.removed += removed
            for file in removed { result.steps.append("removed \(file)") }
            for folder in kept { result.steps.append("left the folder \(folder): it holds other files") }
            if !failed.isEmpty {
                throw VMDriverError(
                    .failed,
                    "\(result.steps.joined(separator: "; ")); but could not remove \(failed.joined(separator: ", ")): "
                        + "the record stays, run `vmctl abort \(name)` again")
            }
        }
        let gone = try await host.blocking("cannot remove the record of \(what)", evenIfCancelled: true) { _ in
            OperationRecords.removeClone(clone, from: domain)
        }
        guard gone else {
            throw VMDriverError(
                .failed, "\(result.steps.joined(separator: "; ")); but libvirt did not remove the record of \(what): run it again"
            )
        }
        result.steps.append("removed the record of \(what)")
    }

    /// Stops the copy processes a dead clone left running (their process groups: SIGTERM, then
    /// SIGKILL after five seconds). Only processes of this machine's boot whose start time
    /// matches the record: a pid used again since is someone else's.
    private func stopHelpers(_ record: OperationRecord, into result: inout AbortResult) async {
        guard !record.helpers.isEmpty else { return }
        guard record.owner.machine == ProcessIdentity.machineName(), record.owner.bootID == ProcessIdentity.bootID() else {
            result.steps.append("its copy processes ran on \(record.owner.machine): not stopped from here")
            return
        }
        for helper in record.helpers {
            let identity = ProcessIdentity(
                pid: helper.pid, startTime: helper.startTime, bootID: record.owner.bootID, machine: record.owner.machine)
            guard identity.liveness() == .alive else { continue }
            kill(-helper.pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(5)
            while identity.liveness() == .alive && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if identity.liveness() == .alive { kill(-helper.pid, SIGKILL) }
            result.steps.append("stopped its copy process (pid \(helper.pid))")
        }
    }

    /// The source goes back onto its own disks: each temporary overlay it still runs on is
    /// merged back (active block commit and pivot); one it no longer uses is removed.
    private func mergeBack(_ record: OperationRecord, into result: inout AbortResult) async throws(VMDriverError) {
        guard !record.merges.isEmpty else { return }
        let (host, domain, label) = (self.host, self.domain, self.label)
        let (layout, active) = try await host.blocking("cannot read the disks of \(label)") { _ in
            (try DiskLayout.read(domain: domain, host: host, label: label), try domain.isActive())
        }
        var onOverlays: [String: (frozen: DiskLayout.Disk, overlay: String)] = [:]
        var unused: [String] = []
        for merge in record.merges {
            if let disk = layout.disks.first(where: { $0.target == merge.disk && $0.path == merge.overlay }),
                let below = disk.chain.first
            {
                var frozen = disk
                (frozen.path, frozen.format) = (below.path, below.format ?? "qcow2")
                onOverlays[merge.disk] = (frozen, merge.overlay)
            } else if !layout.disks.contains(where: { disk in
                disk.path == merge.overlay || disk.chain.contains { $0.path == merge.overlay }
            }) {
                unused.append(merge.overlay)
            }
        }
        if !onOverlays.isEmpty {
            guard active else {
                throw VMDriverError(
                    .invalidState,
                    "\(label) is shut off and still rests on the temporary overlays of \(record.operationDescription) "
                        + "(\(onOverlays.values.map(\.overlay).sorted().joined(separator: ", "))): libvirt merges them only "
                        + "while it runs; start it and run `vmctl abort \(name)` again")
            }
            try await ClonePlan.commitBack(onOverlays, source: self)
            for (disk, entry) in onOverlays.sorted(by: { $0.key < $1.key }) {
                result.steps.append("merged \(entry.overlay) back into \(entry.frozen.path) (\(disk)) and removed it")
                result.removed.append(entry.overlay)
            }
        }
        let storage = host.storage
        let removed = try await host.blocking("cannot remove the overlays of \(label)", evenIfCancelled: true) {
            [unused] _ in
            unused.filter { storage.exists($0) && (try? storage.delete($0)) != nil }
        }
        for overlay in removed { result.steps.append("removed the unused overlay \(overlay)") }
        result.removed += removed
    }
}
