import Foundation
internal import Libvirt

extension VirtualMachine {
    /// The linked clones that still rest on this VM's frozen images (made by VMDriver; a
    /// promoted clone no longer counts).
    public func linkedClones() async throws(VMDriverError) -> [String] {
        let host = self.host
        let uuid = self.uuid
        return try await host.blocking("cannot list the linked clones of \(label)") { connection in
            try Self.dependents(of: uuid, connection: connection, host: host).map(\.name).sorted()
        }
    }

    /// VMs whose VMDriver clone record names `parent` and whose disk chains still contain one of
    /// the recorded frozen images. Blocking.
    static func dependents(of parent: UUID, connection: Connection, host: Host) throws -> [(name: String, domain: Domain)] {
        try connection.listAllDomains().compactMap { domain in
            guard let lineage = CloneDefinition.lineage(in: try domain.xmlDescription([.inactive])),
                lineage.parentUUID == parent, try domain.uuid() != parent
            else { return nil }
            let name = try domain.name()
            let layout = try? DiskLayout.read(domain: domain, host: host, label: "VM '\(name)'")
            let chained = Set(layout?.disks.flatMap { $0.chain.map(\.path) } ?? [])
            return lineage.bases.contains(where: chained.contains) ? (name, domain) : nil
        }
    }

    /// The images the host's other VMs use (their disks with their backing chains, and their
    /// read-only disks), and the names of those whose disks could not be read. Blocking.
    static func imagesInUse(
        besides uuid: UUID, connection: Connection, host: Host
    ) throws -> (images: Set<String>, unreadable: [String]) {
        var images: Set<String> = []
        var unreadable: [String] = []
        for other in try connection.listAllDomains() where try other.uuid() != uuid {
            let name = (try? other.name()) ?? "?"
            guard let layout = try? DiskLayout.read(domain: other, host: host, label: "VM '\(name)'") else {
                unreadable.append(name)
                continue
            }
            for disk in layout.disks { images.formUnion([disk.path] + disk.chain.map(\.path)) }
            images.formUnion(layout.shared)
        }
        return (images, unreadable)
    }

    /// Removes the VM from the host (undefine), with its disk images when `withStorage`.
    /// Images another VM's disk chain uses are never deleted.
    /// - Throws: code 5 if the VM is running, or if linked clones rest on its images (naming
    ///   them) unless `force`. Calls `virDomainUndefineFlags`.
    public func delete(withStorage: Bool = false, force: Bool = false) async throws(VMDriverError) -> [String] {
        let host = self.host
        let label = self.label
        let uuid = self.uuid
        return try await host.blocking("cannot delete \(label)") { [domain] connection in
            let state = try Self.state(of: domain)
            if state.isActive {
                throw VMDriverError(.invalidState, "cannot delete \(label): it is \(state); shut it down or destroy it first")
            }
            let clones = try Self.dependents(of: uuid, connection: connection, host: host).map(\.name).sorted()
            if !clones.isEmpty && !force {
                throw VMDriverError(
                    .invalidState,
                    "cannot delete \(label): linked clones rest on its disks (\(clones.joined(separator: ", "))); "
                        + "promote them first (vmctl promote NAME), or pass --force to break them")
            }
            // Clones made of it on another host, which are not defined here (the VM migrated
            // since): on shared storage they may rest on its images from there. (One made here
            // and gone from here was deleted.)
            let elsewhere = ((try? CloneChildren.read(domain)) ?? []).filter {
                $0.host != host.name && (try? connection.lookupDomain(uuid: $0.uuid)) == nil
            }
            if !elsewhere.isEmpty && !force {
                throw VMDriverError(
                    .invalidState,
                    "cannot delete \(label): it has linked clones that are not on \(host.label) ("
                        + elsewhere.map { "\($0.name), made on \($0.host)" }.joined(separator: "; ")
                        + ") and may rest on its images from there; promote or delete them where they are, or pass --force "
                        + "if they are gone")
            }
            let definition = try domain.xmlDescription([.inactive])
            let lineage = CloneDefinition.lineage(in: definition)
            var removable: [String] = []
            if withStorage {
                let layout = try DiskLayout.read(domain: domain, host: host, label: label)
                let usedElsewhere = try Self.imagesInUse(besides: uuid, connection: connection, host: host).images
                // Frozen images live on in clones (with --force) and shared bases in other VMs.
                removable = layout.disks.flatMap { [$0.path] + $0.chain.map(\.path) }.filter { !usedElsewhere.contains($0) }
                if let nvram = layout.nvram { removable.append(nvram) }
                // Its cloud-init seed is its own (other read-only disks are shared, and stay).
                if let seed = (try? XMLTree.parse(definition)).flatMap(NoCloudSeed.recorded(in:)),
                    !usedElsewhere.contains(seed.path)
                {
                    removable.append(seed.path)
                }
            }
            try domain.undefine([.managedSave, .snapshotsMetadata, withStorage ? .nvram : .keepNVRAM])
            // A linked clone deleted here is one its parent no longer has to keep (once it is
            // gone: a refused undefine leaves the parent's record as it was).
            if let lineage, let parent = try? connection.lookupDomain(uuid: lineage.parentUUID) {
                CloneChildren.remove(uuid, from: parent)
            }
            var removed: [String] = []
            // The host's files, wherever the host is: never this machine's for a remote one.
            for file in removable where host.storage.exists(file) {
                try host.storage.delete(file)
                removed.append(file)
            }
            return removed
        }
    }

    /// Turns a linked clone into a standalone VM: each disk's backing data is copied into its
    /// overlay (a block pull while it runs; while it is off, `qemu-img rebase` on this machine or
    /// a copy made by libvirt on a remote host, see `HostStorage.flatten`), then its clone
    /// record is dropped, so its parent may be deleted.
    /// - Throws: code 4 if the VM's disks have no backing images. Calls `virDomainBlockPull`.
    public func promote() async throws(VMDriverError) -> Job<VirtualMachine> {
        let host = self.host
        let label = self.label
        let layout = try await host.blocking("cannot promote \(label)") { [domain] _ in
            try DiskLayout.read(domain: domain, host: host, label: label)
        }
        let chained = layout.disks.filter { !$0.chain.isEmpty }
        guard !chained.isEmpty else {
            throw VMDriverError(.invalidParameter, "\(label) is not a linked clone: its disks have no backing images")
        }
        // The record: while it is there a migration of the VM (or another promotion) is code 5,
        // and this promotion is code 5 while another process's operation holds the VM.
        try await OperationClaim.check(self)
        let claim = try await OperationClaim.claim(self, operation: .promote)
        return Job(
            kind: .clone, subject: "promotion of \(label)", describe: { [self] in (try? await "\(label) is \(state())") ?? "" }
        ) { [self] context throws(VMDriverError) -> VirtualMachine in
            do throws(VMDriverError) {
                try await pullIn(chained, context: context)
            } catch {
                await claim.release()
                throw error
            }
            await claim.release()
            return self
        }
    }

    /// Copies each disk's backing data into it, then drops the clone record.
    private func pullIn(_ chained: [DiskLayout.Disk], context: JobContext) async throws(VMDriverError) {
        let (host, label, domain) = (self.host, self.label, self.domain)
        for (index, disk) in chained.enumerated() {
            context.report(
                JobProgress(
                    phase: "copying backing data into \(disk.target)", percent: 100 * Double(index) / Double(chained.count)))
            // Running: a block pull, followed by its events. Off: the image is rebased.
            let watch = try await host.blocking("cannot promote disk \(disk.target) of \(label)") {
                connection -> BlockJobWatch? in
                guard try domain.isActive() else { return nil }
                let watch = try BlockJobWatch(domain: domain, disk: disk.target, connection: connection)
                try domain.blockPull(disk: disk.target)
                return watch
            }
            if let watch {
                try await pull(watch, label: label)
            } else {
                try await host.blocking("cannot promote disk \(disk.target) of \(label)", lane: .long) { _ in
                    try host.storage.flatten(disk.path, format: disk.format)
                }
            }
        }
        let uuid = self.uuid
        try await host.blocking("cannot update the definition of \(label)") { connection in
            let root = try XMLTree.parse(try domain.xmlDescription([.inactive, .secure]))
            // Standalone now: its parent no longer has to keep anything for it.
            if let lineage = CloneDefinition.lineage(in: root.serialized()),
                let parent = try? connection.lookupDomain(uuid: lineage.parentUUID)
            {
                CloneChildren.remove(uuid, from: parent)
            }
            root.child("metadata")?.removeChildren { $0.name.hasSuffix(":clone") }
            _ = try connection.defineDomain(xml: root.serialized())
        }
        context.report(JobProgress(phase: "done", percent: 100))
    }

    /// Waits for a block pull to end; cancelling aborts it. Only a pull that libvirt reports
    /// completed (or that left the disk with no backing image) is a success.
    private func pull(_ watch: BlockJobWatch, label: String) async throws(VMDriverError) {
        let (domain, host, disk) = (self.domain, self.host, watch.disk)
        let outcome = await withTaskCancellationHandler {
            await watch.wait(domain: domain, host: host, deadline: .now + .seconds(86_400))
        } onCancel: {
            Task { try? await host.blocking("", evenIfCancelled: true) { _ in try domain.blockJobAbort(disk: disk) } }
        }
        switch outcome {
        case .completed, .ready:
            return
        case .vanished:
            // No event said how it ended: the disk's chain does.
            let layout = try await host.blocking("cannot read the disks of \(label)", evenIfCancelled: true) { _ in
                try DiskLayout.read(domain: domain, host: host, label: label)
            }
            if layout.disks.first(where: { $0.target == disk })?.chain.isEmpty == true { return }
            throw VMDriverError(
                .failed, "the block pull of \(disk) of \(label) ended and the disk still rests on its backing images")
        case .cancelled:
            throw VMDriverError(
                .failed, "promotion of \(label) was cancelled: the block pull of \(disk) was aborted; it is still a linked clone")
        case .failed:
            throw VMDriverError(
                .failed,
                "the block pull of \(disk) of \(label) failed (libvirt reports the job failed); it is still a linked clone")
        case .timedOut:
            try? await host.blocking("", evenIfCancelled: true) { _ in try domain.blockJobAbort(disk: disk) }
            throw VMDriverError(.timeout, "the block pull of \(disk) of \(label) did not end within a day and was aborted")
        }
    }
}
