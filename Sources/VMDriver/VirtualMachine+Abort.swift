import Foundation
internal import Libvirt

#if canImport(Glibc)
    import Glibc
#endif

/// What `VirtualMachine.abortJob()` did.
public struct AbortResult: Sendable, Codable, Equatable {
    public var vm: String
    /// The libvirt job it aborted; nil when none ran.
    public var aborted: HostJob.Operation?
    /// The VMDriver record the VM held, if any.
    public var record: OperationRecord?
    /// Whether the record's owner still ran.
    public var owner: OperationRecord.OwnerStatus?
    /// What was removed from the target (images by path, pools by name), for an owner that is gone.
    public var removed: [String] = []
    /// Whether the VM holds no record any more.
    public var recordRemoved = false
    /// Each step, in words.
    public var steps: [String] = []
}

extension VirtualMachine {
    /// Ends the job on the VM that another process started (virDomainAbortJob) and, with
    /// VMDriver's record of it, what is left of it.
    ///
    /// While the record's owner runs, aborting the libvirt job is enough: the owner sees its
    /// migration fail, rolls back and removes the record; this waits up to `wait` for that.
    /// When the owner is gone (killed, crashed; or `force`), this does its rollback: it waits
    /// for libvirt's job to end, removes the images and transient pools the record lists on
    /// the target (unless the migration had completed and the VM now runs there), then the
    /// record.
    /// - Throws: code 5 when there is neither a job nor a record, or for the incoming half of a
    ///   migration (libvirt aborts it on the source); code 3 when the job or the
    ///   owner's rollback does not end within `wait`; code 2 when the target cannot be reached
    ///   or an image cannot be removed (the record then stays, so running it again retries).
    public func abortJob(force: Bool = false, wait: Duration = .seconds(15)) async throws(VMDriverError) -> AbortResult {
        let domain = self.domain
        let (job, record, clones) = try await host.blocking("cannot read the job of \(label)") { _ in
            let job = try domain.isActive() ? (try? domain.jobStats()).flatMap(HostJob.LibvirtJob.init) : nil
            return (job, try OperationRecords.read(domain), (try? OperationRecords.readClones(domain)) ?? [])
        }
        guard job != nil || record != nil || !clones.isEmpty else {
            throw VMDriverError(.invalidState, "\(label) runs no job and holds no VMDriver record: there is nothing to abort")
        }
        var result = AbortResult(vm: name, record: record ?? clones.first, owner: (record ?? clones.first)?.ownerStatus)
        if !clones.isEmpty {
            try await endClones(clones, force: force, wait: wait, into: &result)
            if job == nil && record == nil {
                result.recordRemoved = true
                return result
            }
        }
        // The incoming half of a migration: libvirt aborts a migration only on its source
        // ("cannot abort incoming migration"), and the record here travelled with the domain.
        if let record, record.source != host.name, record.ownerStatus != .gone || job?.operation == .migrationIn {
            throw VMDriverError(
                .invalidState,
                "\(label) is the target of \(record.operationDescription) from \(record.source), which "
                    + "\(record.ownerDescription) runs: abort it on \(record.source) (`vmctl -c SOURCE abort \(name)`)")
        }
        if let job, job.operation == .migrationIn {
            throw VMDriverError(
                .invalidState,
                "\(label) is the target of a migration: abort it on the source host (`vmctl -c SOURCE abort \(name)`)")
        }
        if let job {
            let what = job.operation.map { "libvirt's \($0.rawValue) job" } ?? "libvirt's job"
            do throws(VMDriverError) {
                try await host.blocking("cannot abort the job of \(label)") { _ in try domain.abortJob() }
                result.aborted = job.operation ?? .unknown
                result.steps.append("aborted \(what)")
            } catch  where error.libvirtError?.code == .operationInvalid {
                result.steps.append("\(what) had ended already")
            }
        }
        guard let record else {
            result.recordRemoved = true
            return result
        }
        let owner = record.ownerDescription
        if record.ownerStatus != .gone && !force {
            // The owner rolls back by itself.
            if await Self.poll(wait, { (try? await self.readRecord()) == .some(nil) }) {
                result.recordRemoved = true
                result.steps.append("\(owner) rolled back \(record.operationDescription) and removed its record")
                return result
            }
            let unknown = record.ownerStatus == .unknown
            throw VMDriverError(
                .timeout,
                "\(owner) still holds the record of \(record.operationDescription) on \(label) after \(Job<Void>.format(wait)): "
                    + (unknown
                        ? "this machine cannot tell whether it still runs; once you know it is gone, run `vmctl abort \(name) --force`"
                        : "it may still be taking away what it made on the target; see `vmctl jobs \(name)`"))
        }
        result.steps.append(
            record.ownerStatus == .gone ? "\(owner) is gone: doing its rollback" : "--force: doing the rollback of \(owner)")
        // libvirt's abort is asynchronous: the target's half of the migration goes away with it.
        let idle = await Self.poll(wait) {
            (try? await self.host.blocking("") { _ in
                // A driver without job stats runs no job VMDriver could wait for.
                try !domain.isActive() || (try? domain.jobStats()).flatMap(HostJob.LibvirtJob.init) == nil
            }) == true
        }
        guard idle else {
            throw VMDriverError(.timeout, "libvirt's job on \(label) did not end within \(Job<Void>.format(wait)) of the abort")
        }
        if record.operation == .promote {
            try await stopBlockPulls(into: &result)
        }
        if record.operation == .convert {
            try await removeConversionCopies(record, into: &result)
        }
        if record.source != host.name {
            // The VM a completed migration moved here, with the record it carried.
            result.steps.append(
                "\(record.operationDescription) had brought the VM here from \(record.source): nothing to take away")
        } else if let uri = record.target, !record.images.isEmpty || !record.pools.isEmpty {
            try await takeAway(record, targetURI: uri, wait: wait, into: &result)
        }
        result.recordRemoved = try await host.blocking("cannot remove the record of \(label)", evenIfCancelled: true) { _ in
            OperationRecords.remove(from: domain)
        }
        guard result.recordRemoved else {
            throw VMDriverError(
                .failed,
                "\(result.steps.joined(separator: "; ")); but libvirt did not remove the record from \(label): run it again")
        }
        result.steps.append("removed the record")
        return result
    }

    /// Removes the copies a conversion whose owner died had made, unless the VM uses them (the
    /// conversion had redefined it before its record went).
    private func removeConversionCopies(_ record: OperationRecord, into result: inout AbortResult) async throws(VMDriverError) {
        let (host, domain, label) = (self.host, self.domain, self.label)
        let (removed, left) = try await host.blocking("cannot remove the copies of \(label)'s conversion") { _ in
            let used = Set(try DiskLayout.read(domain: domain, host: host, label: label).disks.map(\.path))
            var removed: [String] = []
            var left: [String] = []
            for file in record.files.reversed() where !used.contains(file) && host.storage.exists(file) {
                do {
                    try host.storage.delete(file)
                    removed.append(file)
                } catch {
                    left.append("\(file) (\(error))")
                }
            }
            return (removed, left)
        }
        for file in removed {
            result.removed.append(file)
            result.steps.append("removed \(file)")
        }
        if !left.isEmpty {
            throw VMDriverError(
                .failed, "could not remove \(left.joined(separator: ", ")); the record stays: run `vmctl abort \(name)` again")
        }
    }

    /// Removes what the record lists on the target, unless the VM arrived there (the migration
    /// completed before its owner died): then its images stay, and only the record it carried goes.
    private func takeAway(
        _ record: OperationRecord, targetURI uri: String, wait: Duration, into result: inout AbortResult
    ) async throws(VMDriverError) {
        let target: Host
        do {
            target = try await Host.connect(uri, logger: host.logger)
        } catch {
            throw VMDriverError(
                .failed,
                "cannot reach \(uri) to remove what \(record.ownerDescription) made there (\(record.images.joined(separator: ", "))): "
                    + "\(error.message); the record stays: run `vmctl abort \(name)` again once it answers",
                cause: error)
        }
        defer { Task { try? await target.close() } }
        let uuid = self.uuid
        // The incoming half of an aborted migration takes a moment to go; one that stays without
        // a job is the VM, arrived.
        func arrived() async -> Bool? {
            try? await target.blocking("") { connection in
                guard let moved = try? connection.lookupDomain(uuid: uuid) else { return false }
                return try !moved.isActive() || (try? moved.jobStats()).flatMap(HostJob.LibvirtJob.init) == nil
            }
        }
        var settled = false
        var landed = false
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            let first = await arrived()
            if first == false {
                settled = true
                break
            }
            try? await Task.sleep(for: .seconds(1))
            if first == true, await arrived() == true {
                (settled, landed) = (true, true)
                break
            }
        }
        guard settled else {
            throw VMDriverError(
                .timeout, "the incoming half of the migration on \(target.label) did not end within \(Job<Void>.format(wait))")
        }
        if landed {
            result.steps.append(
                "\(record.operationDescription) had completed: the VM is on \(target.label), and its images there stay")
            _ = try? await target.blocking("") { connection in
                OperationRecords.remove(from: try connection.lookupDomain(uuid: uuid))
            }
            return
        }
        let preparation = TargetPreparation(target: target)
        try await target.blocking("cannot look up what was made on \(target.label)") { _ in
            preparation.restore(images: record.images, pools: record.pools)
        }
        let left = await preparation.rollback()
        for image in record.images where !left.contains(image) { result.removed.append(image) }
        for image in result.removed { result.steps.append("removed \(image) from \(target.label)") }
        for pool in record.pools {
            result.removed.append(pool.name)
            result.steps.append("stopped the transient pool \(pool.name) on \(target.label)")
        }
        if !left.isEmpty {
            throw VMDriverError(
                .failed,
                "could not remove \(left.joined(separator: ", ")) from \(target.label); the record stays: "
                    + "run `vmctl abort \(name)` again")
        }
    }

    /// Ends the clones being made of this VM, or finishes their rollback. A clone whose process
    /// is gone is rolled back from its record. One whose process runs on this machine is sent
    /// SIGTERM, as `kill PID` would (vmctl cancels the clone and rolls back); if the process
    /// ends without removing the record, its rollback is done here. One run from another
    /// machine is left alone unless `force`.
    private func endClones(
        _ clones: [OperationRecord], force: Bool, wait: Duration, into result: inout AbortResult
    ) async throws(VMDriverError) {
        var running: [String] = []
        for clone in clones {
            switch clone.ownerStatus {
            case .gone:
                result.steps.append(
                    "\(clone.ownerDescription), which made \(clone.operationDescription), is gone: doing its rollback")
                try await finishClone(clone, into: &result)
            case .unknown where force:
                result.steps.append("--force: doing the rollback of \(clone.ownerDescription)")
                try await finishClone(clone, into: &result)
            case .unknown:
                running.append(
                    "\(clone.ownerDescription) makes \(clone.operationDescription) and this machine cannot tell whether it "
                        + "still runs; once you know it is gone, run `vmctl abort \(name) --force`")
            case .alive:
                kill(clone.owner.pid, SIGTERM)
                result.steps.append("sent SIGTERM to \(clone.ownerDescription), which makes \(clone.operationDescription)")
                let uuid = clone.cloneUUID
                let ended = await Self.poll(wait) {
                    let left = try? await self.host.blocking("") { [domain] _ in try OperationRecords.readClones(domain) }
                    return left.map { !$0.contains { $0.cloneUUID == uuid } } ?? false || clone.ownerStatus == .gone
                }
                // Read again once it ended: it may have removed its record since the last poll.
                let left = (try? await host.blocking("") { [domain] _ in try OperationRecords.readClones(domain) })?
                    .first { $0.cloneUUID == uuid }
                if !ended {
                    running.append(
                        "\(clone.ownerDescription) still makes \(clone.operationDescription) \(Job<Void>.format(wait)) after "
                            + "SIGTERM")
                } else if let left {
                    // It died without rolling back.
                    result.steps.append("\(clone.ownerDescription) ended without rolling back: doing its rollback")
                    try await finishClone(left, into: &result)
                } else {
                    result.steps.append(
                        "\(clone.ownerDescription) rolled back \(clone.operationDescription) and removed its record")
                }
            }
        }
        if !running.isEmpty {
            throw VMDriverError(
                .invalidState, (result.steps + running).joined(separator: "; "))
        }
    }

    /// A promotion's block pulls, stopped: the data already pulled stays in the overlay (the
    /// disk is still a linked clone, and reads the same).
    private func stopBlockPulls(into result: inout AbortResult) async throws(VMDriverError) {
        let (host, domain, label) = (self.host, self.domain, self.label)
        let stopped = try await host.blocking("cannot stop the block pulls of \(label)", evenIfCancelled: true) {
            _ -> [String] in
            guard try domain.isActive() else { return [] }
            let layout = try DiskLayout.read(domain: domain, host: host, label: label)
            return try layout.disks.compactMap { disk in
                guard try domain.blockJobInfo(disk: disk.target) != nil else { return nil }
                try domain.blockJobAbort(disk: disk.target)
                return disk.target
            }
        }
        for disk in stopped { result.steps.append("stopped the block pull of \(disk)") }
    }

    /// The VM's record now.
    func readRecord() async throws(VMDriverError) -> OperationRecord? {
        try await host.blocking("cannot read the record of \(label)") { [domain] _ in try OperationRecords.read(domain) }
    }

    /// Polls `condition` every 250 ms until it holds (true) or `limit` passes (false).
    static func poll(_ limit: Duration, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            if await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}
