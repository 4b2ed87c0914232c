import Foundation
internal import Libvirt
import Synchronization

/// Running a migration: the cold shutdown and copies, the transfer, what happens on the target
/// after it, and the rollback that leaves the VM where it was when it fails or is cancelled.
extension MigrationPlan {
    /// Where the VM is now, for messages: "the VM is running on host 'hosta'".
    func whereIsTheVM() async -> String {
        // Even for a cancelled job: its message must still say where the VM is.
        let sourceState = try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
            try VirtualMachine.state(of: domain)
        }
        let targetState = try? await destinationHost.blocking("", evenIfCancelled: true) { [targetName] connection in
            try VirtualMachine.state(of: try connection.lookupDomain(name: targetName))
        }
        var places: [String] = []
        if let sourceState { places.append("\(sourceState) on \(vm.host.label)") }
        if let targetState { places.append("\(targetState) on \(destinationHost.label)") }
        return places.isEmpty ? "the VM cannot be found on either host" : "the VM is " + places.joined(separator: " and defined ")
    }

    /// Runs the migration, watching it from this task while a pool thread blocks in libvirt.
    func execute(context: JobContext, claim: OperationClaim) async throws(VMDriverError) -> MigrationResult {
        defer { Task { try? await destinationHost.close() } }
        var snapshotsTakenOff = false
        do {
            if !snapshots.isEmpty {
                try await vm.host.blocking("cannot take the snapshots of \(vm.label) off \(vm.host.label) for the move") {
                    [domain = vm.domain, snapshots] _ in try snapshots.takeOff(domain)
                }
                snapshotsTakenOff = true
            }
            var result = try await perform(context: context)
            if snapshotsTakenOff { result.steps += await redefineSnapshotsOnTarget() }
            await preparation.commit()
            // The record travelled with the domain's metadata: it goes on both hosts.
            await claim.release(target: destinationHost, name: targetName)
            return result
        } catch {
            // Nothing of the VM stays on the target; a VM shut down for a cold migration runs
            // again on the source.
            let left = await preparation.rollback()
            var snapshotsLost = ""
            if snapshotsTakenOff {
                let failed =
                    await
                    (try? vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain, snapshots] _ in
                        snapshots.redefine(on: domain)
                    }) ?? ["the source could not be reached"]
                if !failed.isEmpty {
                    snapshotsLost =
                        "; the snapshots could not all be put back on \(vm.host.label): \(failed.joined(separator: "; "))"
                }
            }
            await claim.release()
            if type == .cold && wasActive {
                try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
                    if try !domain.isActive() { try domain.start() }
                }
            }
            // Where the VM is, once everything has been put back: every failure says so.
            let leftover =
                left.isEmpty
                ? ""
                : "; VMDriver could not remove what it made on \(destinationHost.label): \(left.joined(separator: ", ")) "
                    + "(remove it before trying again)"
            throw VMDriverError(
                error.code, "\(error.message); \(await whereIsTheVM())\(leftover)\(snapshotsLost)", cause: error.cause)
        }
    }

    func perform(context: JobContext) async throws(VMDriverError) -> MigrationResult {
        let started = ContinuousClock.now
        let label = vm.label
        var steps: [String] = []
        // Backing images the target lacks go first, file for file, while the VM runs on (they
        // are frozen: nothing writes to them); then the top images over them.
        let seeded = moves.filter { !$0.seed.isEmpty }
        if !seeded.isEmpty {
            try await preparation.seed(seeded, from: vm.host) { path in
                context.report(JobProgress(phase: "copying \(PathName.last(path)) to \(destinationHost.label)", percent: 0))
            }
            for path in Set(seeded.flatMap(\.seed)).sorted() { steps.append("copied \(path) to \(destinationHost.label)") }
            if type != .cold { try await preparation.createImages(seeded) }
        }

        // The cloud-init seed, read-only: copied while the VM runs on.
        if let seed {
            context.report(JobProgress(phase: "copying the cloud-init seed to \(destinationHost.label)", percent: 0))
            try await preparation.copyFile(seed.source, to: seed.target, from: vm.host)
            steps.append("copied the cloud-init seed \(PathName.last(seed.source)) to \(seed.target) on \(destinationHost.label)")
        }
        if type == .cold && wasActive {
            context.report(JobProgress(phase: "shutting the guest down", percent: 0))
            if Task.isCancelled {
                throw VMDriverError(.failed, "migration of \(label) to \(destination) was cancelled before the VM was shut down")
            }
            // Nested: cancelling the migration cancels the shutdown (which with --force would
            // otherwise still destroy the VM at its deadline).
            _ = try await vm.shutdown(timeout: options.shutdownTimeout, force: options.force).nestedValue()
            steps.append("shut the VM down")
        }
        if type == .cold {
            for move in moves where move.mode != .shared {
                context.report(JobProgress(phase: "copying \(move.disk.target) to \(destinationHost.label)"))
                try await preparation.copyImage(move, from: vm.host)
                steps.append(
                    "copied \(move.mode == .incremental ? "the top image" : "the image") of \(move.disk.target) to \(move.targetPath)"
                )
            }
        }
        if let downtime = options.maxDowntimeMilliseconds, type != .cold {
            try await vm.host.blocking("cannot set the downtime of \(label)") { [domain = vm.domain] _ in
                try domain.setMigrationMaxDowntime(milliseconds: downtime)
            }
        }
        // The policy adds post-copy where the target may offer it; the target's QEMU is what
        // needs userfaultfd, which only trying tells on a remote host. Refused, it costs a
        // QEMU start on the target and nothing moves: then go on without it.
        var flags = self.flags
        let calling = ContinuousClock.now
        var attempt = try await transfer(flags: flags, context: context, steps: &steps, started: started)
        if let error = attempt.error, Self.isPostcopyRefusal(error), policyAddedPostcopy, !attempt.timedOut,
            !attempt.cancelled
        {
            steps.append("post-copy is not available on \(destinationHost.label) (\(error.message)): going on without it")
            flags.remove(.postcopy)
            attempt = try await transfer(flags: flags, context: context, steps: &steps, started: started)
        }
        let called = ContinuousClock.now - calling
        if let error = attempt.error {
            if attempt.pausedAt != nil {
                // Paused by the policy, still on the source: it runs again there.
                try? await vm.host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
                    if try domain.state().state == .paused { try domain.resume() }
                }
            }
            if attempt.timedOut {
                throw VMDriverError(
                    .timeout,
                    "migration of \(label) to \(destination) did not finish within \(Job<Void>.format(timeout)) and was aborted",
                    cause: error)
            }
            if attempt.cancelled {
                throw VMDriverError(.failed, "migration of \(label) to \(destination) was cancelled", cause: error)
            }
            if Self.isPostcopyRefusal(error) {
                throw VMDriverError(
                    .notSupported,
                    "post-copy is not available on \(destinationHost.label): its QEMU cannot use userfaultfd (QEMU runs "
                        + "unprivileged; the kernel denies it unless vm.unprivileged_userfaultfd = 1 there). Nothing moved",
                    cause: error)
            }
            if flags.contains(.tls), Self.isCertificateProblem(error) {
                throw VMDriverError(
                    .notSupported,
                    "security 'high' needs QEMU's TLS certificates on both hosts (/etc/pki/qemu): \(error.message). Nothing moved",
                    cause: error)
            }
            let code = error.code == .completed ? .failed : error.code
            throw VMDriverError(code, error.message, cause: error)
        }

        // Done: read what happened from the target, restart a cold-migrated VM.
        let targetName = self.targetName
        let restart = type == .cold && wasActive
        let resume = attempt.pausedAt != nil
        let coldSettings = type == .cold && (options.memoryMiB != nil || options.vcpus != nil)
        let options = self.options
        let (stats, state) = try await destinationHost.blocking("cannot read the migrated VM on \(destinationHost.label)") {
            connection in
            var moved = try connection.lookupDomain(name: targetName)
            let stats = try? moved.jobStats([.completed])
            if coldSettings {
                let xml = try moved.xmlDescription([.inactive, .secure])
                guard let updated = Self.rewrite(xml, moves: [], options: options, settings: true, rename: false) else {
                    throw VMDriverError(.failed, "cannot read the definition of \(targetName) on \(destinationHost.label)")
                }
                moved = try connection.defineDomain(xml: updated)
            }
            if restart, try !moved.isActive() { try moved.start() }
            if resume, try moved.state().state == .paused { try moved.resume() }
            return (stats, try VirtualMachine.state(of: moved))
        }
        // Resumed on the target just now: the pause was the guest's downtime.
        let pausedFor = attempt.pausedAt.map { ContinuousClock.now - $0 }
        if coldSettings { steps.append("defined the new memory and vCPU settings on the target") }
        if restart { steps.append("started the VM on the target") }
        if resume { steps.append("resumed the guest on the target") }
        if options.memoryMiB != nil || options.vcpus != nil, type != .cold || !restart {
            steps.append(
                "the new memory and vCPU settings are in the target's definition: they take effect at the guest's next boot")
        }
        // The VM left the source: so do the images that were copied (not shared ones, not
        // the bases a linked clone rests on).
        if !options.keepSource {
            for move in moves where move.mode != .shared {
                if await removeFromSource(move.disk.path) {
                    steps.append("removed the source's copy of \(move.disk.target) (\(move.disk.path))")
                }
            }
            steps += await removeSnapshotChainsFromSource()
            if let seed, await removeFromSource(seed.source) {
                steps.append("removed the source's copy of the cloud-init seed (\(seed.source))")
            }
        }
        let elapsed = ContinuousClock.now - started
        return MigrationResult(
            vm: targetName, source: vm.host.name, destination: destinationHost.name, type: type, storage: storage,
            security: options.security,
            seconds: elapsed.seconds, migrationCallSeconds: called.seconds,
            downtimeMilliseconds: Self.downtime(libvirt: stats?.downtime, pausedFor: pausedFor),
            bytesTransferred: Self.bytes(stats, diskSeen: attempt.diskBytes),
            diskBytesTransferred: max(stats?.diskProcessed ?? 0, attempt.diskBytes ?? 0) > 0
                ? max(stats?.diskProcessed ?? 0, attempt.diskBytes ?? 0) : nil, state: state,
            steps: steps,
            disks: moves.map {
                MigrationResult.Disk(
                    device: $0.disk.target, mode: $0.mode.rawValue, sourcePath: $0.disk.path, targetPath: $0.targetPath)
            })
    }

    /// After the move: the snapshots defined on the target, parents first, then every image
    /// they name checked there (libvirt's redefine does not look). Steps for the result.
    func redefineSnapshotsOnTarget() async -> [String] {
        let targetName = self.targetName
        let storage = destinationHost.storage
        let outcome = await
            (try? destinationHost.blocking("", evenIfCancelled: true) { [snapshots] connection in
                let moved = try connection.lookupDomain(name: targetName)
                let failed = snapshots.redefine(on: moved)
                let missing = snapshots.snapshots.flatMap { snapshot in
                    snapshot.images.filter { !storage.exists($0) }.map { "snapshot '\(snapshot.name)' needs \($0)" }
                }
                return (failed, missing)
            })
        guard let (failed, missing) = outcome else {
            return ["could not redefine the snapshots \(snapshots.names.joined(separator: ", ")) on \(destinationHost.label)"]
        }
        var steps = [
            "redefined the snapshots \(snapshots.names.joined(separator: ", ")) on \(destinationHost.label)"
                + (snapshots.snapshots.first(where: \.isCurrent).map { " ('\($0.name)' current)" } ?? "")
        ]
        steps += failed.map { "could not redefine \($0) on \(destinationHost.label)" }
        steps += missing.map { "\($0), which is not on \(destinationHost.label)" }
        return steps
    }

    /// After a move that carried snapshots off storage the hosts do not share: the images of
    /// the chain that are the VM's own (some snapshot made or froze them) leave the source too,
    /// unless another VM on the source rests on them (a linked clone's base stays, so no clone
    /// is broken). Images below them (a template's base) are never the VM's to remove.
    func removeSnapshotChainsFromSource() async -> [String] {
        let owned = Set(snapshots.snapshots.flatMap(\.images))
        let candidates = moves.filter { $0.mode != .shared }.flatMap { $0.disk.chain.map(\.path) }.filter(owned.contains)
        guard !candidates.isEmpty else { return [] }
        let (host, uuid, target) = (vm.host, vm.uuid, destinationHost)
        let inUse =
            await
            (try? host.blocking("", evenIfCancelled: true) { connection -> Set<String>? in
                var used: Set<String> = []
                // A base in a folder both hosts share is the target's too now.
                for folder in Set(candidates.map(PathName.parent)) {
                    let shared = StoragePools.sameStorage(folder, source: connection, target: target.connection)
                    if shared != false { used.formUnion(candidates.filter { PathName.parent($0) == folder }) }
                }
                let others = try VirtualMachine.imagesInUse(besides: uuid, connection: connection, host: host)
                // A VM whose disks cannot be read might rest on anything: keep everything.
                guard others.unreadable.isEmpty else { return nil }
                return used.union(others.images)
            }) ?? nil
        guard let inUse else {
            return ["kept the snapshot images on \(host.label): could not tell which other VMs rest on them"]
        }
        var steps: [String] = []
        for path in candidates {
            if inUse.contains(path) {
                steps.append("kept \(path) on \(host.label): another VM there rests on it, or the target shares it")
            } else if await removeFromSource(path) {
                steps.append("removed the source's copy of \(path)")
            }
        }
        return steps
    }

    /// Deletes an image on the source after the VM moved. True when it is gone.
    func removeFromSource(_ path: String) async -> Bool {
        let storage = vm.host.storage
        return
            (try? await vm.host.blocking("", evenIfCancelled: true) { _ in
                try storage.delete(path)
                return !storage.exists(path)
            }) ?? false
    }

    /// True when the policy, not the caller, asked for post-copy.
    var policyAddedPostcopy: Bool { flags.contains(.postcopy) && !options.postcopy }

    static func isPostcopyRefusal(_ error: VMDriverError) -> Bool {
        error.message.localizedCaseInsensitiveContains("postcopy is not supported")
            || error.message.localizedCaseInsensitiveContains("userfaultfd")
    }

    static func isCertificateProblem(_ error: VMDriverError) -> Bool {
        ["x509", "certificate", "credentials", "/etc/pki"].contains { error.message.localizedCaseInsensitiveContains($0) }
    }
}
