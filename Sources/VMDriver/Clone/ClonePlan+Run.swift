import Foundation
internal import Libvirt

/// Running a clone: freezing, overlays or copies, merging a running source back, registering,
/// and rolling back whatever it made when it fails or is cancelled.
extension ClonePlan {
    /// Runs the clone. On failure or cancellation, removes what it made.
    func execute(context: JobContext, handle: Subprocess.Handle, record: CloneRecord) async throws(VMDriverError)
        -> VirtualMachine
    {
        let host = source.host
        let label = source.label
        let created = CreatedFiles()
        do throws(VMDriverError) {
            // Inside: a source deleted before its record is written is a failed clone (2),
            // said as such, like one deleted later.
            try await record.write()
            let directory = self.directory
            let storage = host.storage
            let madeFolder = try await host.blocking("cannot create clone destination \(directory)") { _ in
                try storage.makeFolder(directory)
            }
            if madeFolder { created.add(directory) }
            var lineage: CloneDefinition.Lineage?
            var copied: UInt64?
            switch type {
            case .linked:
                context.report(JobProgress(phase: "freezing the source's disks", percent: 0))
                let bases = try await linkedBases(created: created)
                try Task.checkCancellation(or: "clone '\(name)' of \(label)")
                context.report(JobProgress(phase: "creating overlays", percent: 50))
                for disk in disks {
                    guard let base = bases[disk.source.target] else { continue }
                    try await host.blocking("cannot create the overlay for \(disk.source.target)") { _ in
                        try storage.createOverlay(disk.target, base: base.path, baseFormat: base.format ?? "qcow2") {
                            created.add(disk.target)
                        }
                    }
                }
                lineage = CloneDefinition.Lineage(
                    parentUUID: source.uuid, parentName: source.name, type: "linked", snapshot: snapshot,
                    bases: disks.compactMap { bases[$0.source.target]?.path })
            case .full:
                copied = try await copyDisks(context: context, handle: handle, created: created)
            }
            try Task.checkCancellation(or: "clone '\(name)' of \(label)")
            if let nvram {
                try await host.blocking("cannot copy the NVRAM of \(label)") { _ in
                    // A new file, mode 0600 (the template's 0644 under /usr/share is not kept):
                    // the clone's variables are its own.
                    let plan = DiskCopier.Plan(
                        source: nvram.source, target: nvram.target, format: "raw", flatten: false,
                        bytes: storage.allocatedBytes(nvram.source))
                    try storage.copyImage(plan, handle: handle, created: { created.add(nvram.target) }) { _ in }
                }
            }
            if let seed {
                context.report(JobProgress(phase: "making the cloud-init seed", percent: 93))
                try await host.blocking("cannot make the cloud-init seed of '\(name)'") { _ in
                    let image = try seed.seed.image(handle: handle)
                    try storage.write(image, to: seed.path) { created.add(seed.path) }
                }
            }
            if sysprep {
                context.report(JobProgress(phase: "resetting the clone's identity (virt-sysprep)", percent: 94))
                let disks = self.disks.map { (path: $0.target, format: $0.format) }
                let hostname = seed?.seed.hostname
                try await host.blocking("cannot reset the identity of '\(name)'", lane: .long) { _ in
                    try Sysprep.run(disks: disks, hostname: hostname, handle: handle)
                }
            }
            try Task.checkCancellation(or: "clone '\(name)' of \(label)")
            context.report(
                JobProgress(
                    phase: "registering the clone", percent: 95, bytesProcessed: copied, bytesRemaining: copied.map { _ in 0 },
                    bytesTotal: copied))
            let vm = try await define(lineage: lineage, created: created)
            await record.release()
            context.report(
                JobProgress(
                    phase: "done", percent: 100, bytesProcessed: copied, bytesRemaining: copied.map { _ in 0 }, bytesTotal: copied
                ))
            return vm
        } catch {
            // The source deleted (by another connection) while it was cloned: that is a failure
            // of the clone (2), not a bad parameter, whatever libvirt's "no domain" says.
            let sourceGone = await sourceIsGone()
            let (undone, whole) = await rollback(created, sourceGone: sourceGone)
            // The record stays while something is left: `vmctl abort` retries from it.
            if whole { await record.release() }
            let what = Task.isCancelled || handle.wasTerminated ? "was cancelled" : "failed"
            let message = sourceGone ? "\(label) was deleted while it was being cloned (\(error.message))" : error.message
            throw VMDriverError(
                Task.isCancelled || sourceGone ? .failed : (error.code == .completed ? .failed : error.code),
                "clone '\(name)' of \(label) \(what): \(message); \(undone)", cause: error)
        }
    }

    /// The frozen images the overlays rest on: the snapshot's, or frozen now.
    func linkedBases(created: CreatedFiles) async throws(VMDriverError) -> [String: VMDetails.BackingImage] {
        if snapshot != nil { return snapshotBases }
        let source = self.source
        let name = self.name
        // One freeze at a time per source; a shut-off source whose overlays are still empty
        // already rests on frozen images, so concurrent clones share one base.
        return try await Self.locks.withLock(source.uuid) { () async throws(VMDriverError) in
            try await source.host.blocking("cannot freeze the disks of \(source.label)") { [domain = source.domain] _ in
                let state = try VirtualMachine.state(of: domain)
                try VirtualMachine.requireSnapshottable(domain: domain, label: source.label, state: state)
                let layout = try DiskLayout.read(domain: domain, host: source.host, label: source.label, active: state.isActive)
                let reusable =
                    !state.isActive && !layout.disks.isEmpty
                    && layout.disks.allSatisfy {
                        $0.format == "qcow2" && !$0.chain.isEmpty && source.host.storage.overlayIsEmpty($0.path)
                    }
                if reusable {
                    return Dictionary(uniqueKeysWithValues: layout.disks.map { ($0.target, $0.chain[0]) })
                }
                let frozen = try VirtualMachine.freeze(
                    domain: domain, layout: layout, vmName: source.name, snapshot: "clone-\(Self.fileSafe(name))-\(Self.stamp())",
                    keepMetadata: true, storage: source.host.storage)
                for entry in frozen.values { created.addFreezeOverlay(entry.overlay) }
                return frozen.mapValues { VMDetails.BackingImage(path: $0.frozen.path, format: $0.frozen.format) }
            }
        }
    }

    /// Full copies. A running source is frozen for the copy, then its overlay is merged back.
    /// Returns the bytes copied.
    func copyDisks(context: JobContext, handle: Subprocess.Handle, created: CreatedFiles) async throws(VMDriverError)
        -> UInt64
    {
        let host = source.host
        let label = source.label
        var sources: [String: VMDetails.BackingImage] = [:]
        var temporary: [String: (frozen: DiskLayout.Disk, overlay: String)] = [:]
        if snapshot != nil {
            sources = snapshotBases
        } else if sourceState.isActive {
            context.report(JobProgress(phase: "freezing the running source's disks", percent: 0))
            let plan = self
            temporary = try await Self.locks.withLock(source.uuid) { () async throws(VMDriverError) in
                try await host.blocking("cannot freeze the disks of \(label)") { [domain = plan.source.domain] _ in
                    let layout = try DiskLayout.read(domain: domain, host: host, label: label)
                    return try VirtualMachine.freeze(
                        domain: domain, layout: layout, vmName: plan.source.name, snapshot: plan.copySnapshot,
                        keepMetadata: false, storage: host.storage)
                }
            }
            sources = temporary.mapValues { VMDetails.BackingImage(path: $0.frozen.path, format: $0.frozen.format) }
            created.merging(true)
        } else {
            sources = Dictionary(
                uniqueKeysWithValues: disks.map {
                    ($0.source.target, VMDetails.BackingImage(path: $0.source.path, format: $0.source.format))
                })
        }
        var copyError: VMDriverError?
        var copied: UInt64 = 0
        do throws(VMDriverError) {
            let storage = host.storage
            let disks = self.disks
            let plans = try await host.blocking("cannot read the images of \(label)") { [sources] _ -> [DiskCopier.Plan] in
                disks.compactMap { disk -> DiskCopier.Plan? in
                    guard let image = sources[disk.source.target] else { return nil }
                    let chain = storage.inspect(image.path).chain ?? []
                    let bytes = ([image.path] + chain.map(\.path)).reduce(UInt64(0)) { $0 + storage.allocatedBytes($1) }
                    return DiskCopier.Plan(
                        source: image.path, target: disk.target, format: disk.format, flatten: !chain.isEmpty, bytes: bytes)
                }
            }
            let total = plans.reduce(UInt64(0)) { $0 + $1.bytes }
            var done: UInt64 = 0
            for plan in plans {
                try Task.checkCancellation(or: "clone '\(name)' of \(label)")
                let before = done
                try await host.blocking("cannot copy \(plan.source)", lane: .long) { _ in
                    try storage.copyImage(plan, handle: handle, created: { created.add(plan.target) }) { bytes in
                        let processed = before + bytes
                        context.report(
                            JobProgress(
                                phase: "copying \(PathName.last(plan.source))",
                                percent: total > 0 ? 90 * Double(processed) / Double(total) : nil,
                                bytesProcessed: processed, bytesRemaining: total - min(total, processed), bytesTotal: total))
                    }
                }
                done += plan.bytes
            }
            copied = done
        } catch {
            copyError = error
        }
        if !temporary.isEmpty {
            context.report(JobProgress(phase: "merging the source's writes back (block commit)", percent: 92))
            // Runs whether the copy worked or not: the source must end on its own disks again.
            try await Self.commitBack(temporary, source: source)
            created.merging(false)
        }
        if let copyError { throw copyError }
        return copied
    }

    /// Merges each temporary overlay back into the image below it and removes the overlay: an
    /// active commit, pivoted once libvirt says it is ready (BLOCK_JOB_2's READY: the job info's
    /// counters can meet before QEMU is ready, and a pivot then fails), ended when libvirt says
    /// it completed.
    static func commitBack(_ frozen: [String: (frozen: DiskLayout.Disk, overlay: String)], source: VirtualMachine)
        async throws(VMDriverError)
    {
        let (host, domain, label) = (source.host, source.domain, source.label)
        for (target, entry) in frozen.sorted(by: { $0.key < $1.key }) {
            let failure = "cannot merge \(entry.overlay) back into \(entry.frozen.path) for \(label)"
            let watch = try await host.blocking(failure, evenIfCancelled: true) { connection in
                let watch = try BlockJobWatch(domain: domain, disk: target, connection: connection)
                // SHALLOW: into the overlay's own backing image, never deeper (deeper images may be
                // shared with linked clones).
                try domain.blockCommit(disk: target, flags: [.active, .shallow])
                return watch
            }
            let ready = await watch.wait(domain: domain, host: host, untilReady: true, deadline: .now + .seconds(600))
            guard ready == .ready else {
                try? await host.blocking("", evenIfCancelled: true) { _ in try domain.blockJobAbort(disk: target) }
                throw VMDriverError(
                    ready == .timedOut ? .timeout : .failed,
                    "\(failure): the block commit "
                        + (ready == .timedOut ? "took more than 10 minutes" : "ended before it was ready (\(ready))")
                        + "; the source still runs on \(entry.overlay)")
            }
            try await host.blocking(failure, evenIfCancelled: true) { _ in
                try domain.blockJobAbort(disk: target, flags: [.pivot])
            }
            let pivoted = await watch.wait(domain: domain, host: host, deadline: .now + .seconds(60))
            guard pivoted == .completed || pivoted == .vanished else {
                throw VMDriverError(
                    .failed, "\(failure): the pivot did not complete (\(pivoted)); the source may still run on \(entry.overlay)")
            }
            try? await host.blocking("", evenIfCancelled: true) { _ in
                try source.host.storage.delete(entry.overlay)
            }
        }
    }

    func define(lineage: CloneDefinition.Lineage?, created: CreatedFiles) async throws(VMDriverError) -> VirtualMachine {
        let host = source.host
        let plan = self
        return try await host.blocking("cannot register clone '\(name)'") { [domain = source.domain] connection in
            let definition = try CloneDefinition(sourceXML: try domain.xmlDescription([.inactive, .secure]))
            let xml = definition.rewritten(
                name: plan.name, uuid: plan.uuid,
                disks: Dictionary(
                    uniqueKeysWithValues: plan.disks.map { ($0.source.target, (path: $0.target, format: $0.format)) }),
                logDirectory: plan.directory, nvram: plan.nvram?.target, lineage: lineage, vmxPath: plan.vmxPath,
                seed: plan.seed)
            let clone = try connection.defineDomain(xml: xml)
            created.define(clone)
            if lineage != nil {
                // The parent remembers it too, wherever it migrates (CloneChildren).
                let child = CloneChildren.Child(uuid: plan.uuid, name: plan.name, host: host.name)
                do {
                    try CloneChildren.add(child, to: domain)
                } catch {
                    host.logger.warning("\(plan.source.label) could not record its linked clone '\(plan.name)': \(error)")
                }
            }
            if let file = plan.xmlFile {
                // Beside the clone's disks, on the host.
                try host.storage.write(Data(try clone.xmlDescription([.inactive]).utf8), to: file) { created.add(file) }
            }
            // The UUID is the plan's: the definition carries it.
            return VirtualMachine(host: host, domain: clone, name: plan.name, uuid: plan.uuid, origin: .defined)
        }
    }

    /// True when the source is neither defined nor running any more. A source that ran when the
    /// clone started and is now stopped but still defined was stopped by someone else mid-clone:
    /// the undefine that usually follows at once (destroy, then undefine) is given five seconds,
    /// so the clone's failure says what happened rather than QEMU's "Broken pipe".
    func sourceIsGone() async -> Bool {
        enum Seen: Sendable { case running, stopped, undefined }
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let seen = try? await source.host.blocking("", evenIfCancelled: true) { [domain = source.domain] _ -> Seen in
                do {
                    return try domain.isActive() ? .running : .stopped
                } catch let error as LibvirtError where error.code == .noDomain {
                    return .undefined
                }
            }
            switch seen {
            case .undefined: return true
            case .stopped where sourceState.isActive && ContinuousClock.now < deadline:
                try? await Task.sleep(for: .milliseconds(100))
            default: return false
            }
        }
    }

    /// Removes what a failed clone made, newest first; says what it did. When the source is
    /// gone, the overlays its freeze gave it go too: nothing uses them, and its own images are
    /// as they were before the clone.
    func rollback(_ created: CreatedFiles, sourceGone: Bool = false) async -> (said: String, whole: Bool) {
        let (made, domain) = created.take()
        let files = sourceGone ? created.freezeOverlays() + made : made
        let storage = source.host.storage
        let failures =
            (try? await source.host.blocking("rolling back", evenIfCancelled: true) { _ -> [String] in
                var failures: [String] = []
                if let domain {
                    do { try domain.undefine([.nvram]) } catch { failures.append("the definition of '\(name)' (\(error))") }
                }
                for file in files.reversed() {
                    do {
                        try storage.delete(file)
                    } catch {
                        failures.append(file)
                    }
                }
                return failures
            }) ?? files
        if created.isMerging {
            // The merge back failed: the source runs on a temporary overlay still.
            return (
                (failures.isEmpty ? "the clone's files were removed" : "could not remove: \(failures.joined(separator: ", "))")
                    + "; the source still runs on a temporary overlay: `vmctl abort \(source.name)` merges it back", false
            )
        }
        return failures.isEmpty
            ? ("everything it made was removed; the source is untouched", true)
            : ("could not remove: \(failures.joined(separator: ", ")); `vmctl abort \(source.name)` tries again", false)
    }
}
