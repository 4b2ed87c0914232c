import Foundation
internal import Libvirt
import Synchronization

/// What a disk conversion did.
public struct DiskConversion: Sendable, Codable, Equatable {
    public struct Disk: Sendable, Codable, Equatable {
        /// Guest device name (hda, vda).
        public var target: String
        /// The image the VM used, and the formats of its chain, its own first.
        public var from: String
        public var formats: [String]
        /// The new standalone image the VM uses now.
        public var to: String
        /// Bytes the new image takes on the host's disk (sparse).
        public var bytes: UInt64
    }

    /// The format the disks are in now.
    public var format: String
    public var converted: [Disk]
    /// Disks whose whole chain was in the format already: untouched.
    public var unchanged: [String]
    /// The images the VM used before: kept (a .vmx, a snapshot or a linked clone may still
    /// rest on them); delete them once nothing needs them.
    public var kept: [String]
}

extension VirtualMachine {
    /// The formats `convertDisks(to:)` writes.
    public static let conversionFormats = ["qcow2", "raw"]

    /// Copies each disk of a shut-off VM whose chain holds an image in another format into one
    /// standalone, sparse image in `format` (`qemu-img convert`; on a remote host, libvirt's
    /// volume copy there), then points the VM's definition at the copies. The images it used
    /// are kept. The way out for a VM opened from a .vmx: QEMU migrates no running VM with a
    /// vmdk disk, and a qcow2 one moves hot or warm.
    ///
    /// The new image goes beside the old one, named after it with the format's extension
    /// (`disk.vmdk` → `disk.qcow2`, or `disk-2.qcow2` when that is taken). Cancelling the job
    /// stops the copy and removes what it made; the definition changes only at the end.
    /// - Throws: before the job starts: code 4 for a format VMDriver does not write; code 5 if
    ///   the VM is running, paused or suspended to disk (its memory refers to its current
    ///   disks), or another operation holds it; code 4 if it has no writable file-backed disk.
    ///   A VM whose disks are all in `format` already completes at once with nothing converted.
    ///   The job ends with code 2 (or cancellation) after removing every file it made.
    public func convertDisks(to format: String = "qcow2") async throws(VMDriverError) -> Job<DiskConversion> {
        guard Self.conversionFormats.contains(format) else {
            throw VMDriverError(
                .invalidParameter,
                "cannot convert the disks of \(label) to '\(format)': VMDriver writes \(Self.conversionFormats.joined(separator: " or "))"
            )
        }
        try await OperationClaim.check(self)
        let (host, label) = (self.host, self.label)
        let plan = try await host.blocking("cannot read the disks of \(label)") { [domain] _ in
            try ConversionPlan(domain: domain, host: host, label: label, format: format)
        }
        let claim = try await OperationClaim.claim(self, operation: .convert)
        let handle = Subprocess.Handle()
        return Job(
            kind: .convert, subject: "conversion of \(label) to \(format)",
            describe: { [self] in (try? await "\(label) is \(state()) on its old disks") ?? "" },
            onCancel: { handle.terminate() }
        ) { [self] context throws(VMDriverError) -> DiskConversion in
            do throws(VMDriverError) {
                let result = try await plan.run(vm: self, claim: claim, context: context, handle: handle)
                await claim.release()
                return result
            } catch {
                let left = await plan.rollback(host: host)
                // A record stays while something is left: `vmctl abort` removes it from there.
                if left.isEmpty { await claim.release() }
                let what = Task.isCancelled || handle.wasTerminated ? "was cancelled" : "failed"
                let state = try? await host.blocking("", evenIfCancelled: true) { [domain] _ in try Self.state(of: domain) }
                let now = state.map { "\(label) is \($0), unchanged, on its old disks" } ?? "\(label) is unchanged"
                let undone =
                    left.isEmpty
                    ? "the copies were removed; \(now)"
                    : "could not remove \(left.joined(separator: ", ")); \(now): `vmctl abort \(name)` tries again"
                throw VMDriverError(
                    Task.isCancelled ? .failed : (error.code == .completed ? .failed : error.code),
                    "the conversion of \(label) to \(format) \(what): \(error.message); \(undone)", cause: error)
            }
        }
    }
}

/// The disks a conversion copies, and the copies it made. Reads and copies block.
private final class ConversionPlan: Sendable {
    struct Disk: Sendable {
        var target: String
        var path: String
        var formats: [String]
        var copy: String
        var bytes: UInt64
    }

    let format: String
    let label: String
    let disks: [Disk]
    let unchanged: [String]
    let made = Mutex<[String]>([])

    init(domain: Domain, host: Host, label: String, format: String) throws {
        let state = try VirtualMachine.state(of: domain)
        guard !state.isActive && state != .suspendedToDisk else {
            throw VMDriverError(
                .invalidState,
                "cannot convert the disks of \(label): it is \(state); shut it down first (its memory refers to the disks it has now)"
            )
        }
        let storage = host.storage
        let layout = try DiskLayout.read(domain: domain, host: host, label: label)
        var disks: [Disk] = []
        var unchanged: [String] = []
        var taken: Set<String> = []
        for disk in layout.disks {
            let formats = [disk.format] + disk.chain.map { $0.format ?? storage.inspect($0.path).format ?? "raw" }
            if formats.allSatisfy({ $0 == format }) {
                unchanged.append(disk.target)
                continue
            }
            let folder = PathName.parent(disk.path)
            var stem = PathName.last(disk.path)
            if let dot = stem.lastIndex(of: "."), dot != stem.startIndex { stem = String(stem[..<dot]) }
            var copy = "\(folder)/\(stem).\(format)"
            var next = 2
            while storage.exists(copy) || taken.contains(copy) {
                copy = "\(folder)/\(stem)-\(next).\(format)"
                next += 1
            }
            taken.insert(copy)
            let bytes = ([disk.path] + disk.chain.map(\.path)).reduce(UInt64(0)) { $0 + storage.allocatedBytes($1) }
            disks.append(Disk(target: disk.target, path: disk.path, formats: formats, copy: copy, bytes: bytes))
        }
        guard !disks.isEmpty || !unchanged.isEmpty else {
            throw VMDriverError(.invalidParameter, "\(label) has no disk to convert: it has no writable file-backed disk")
        }
        self.format = format
        self.label = label
        self.disks = disks
        self.unchanged = unchanged
    }

    func run(vm: VirtualMachine, claim: OperationClaim, context: JobContext, handle: Subprocess.Handle)
        async throws(VMDriverError) -> DiskConversion
    {
        let (host, domain, format) = (vm.host, vm.domain, self.format)
        let storage = host.storage
        let total = disks.reduce(UInt64(0)) { $0 + $1.bytes }
        var done: UInt64 = 0
        for disk in disks {
            try Task.checkCancellation(or: "the conversion of \(label)")
            // Recorded before it exists: what a later `vmctl abort` removes should this process die.
            await claim.update { $0.files.append(disk.copy) }
            let plan = DiskCopier.Plan(source: disk.path, target: disk.copy, format: format, flatten: true, bytes: disk.bytes)
            let before = done
            try await host.blocking("cannot convert \(disk.path)", lane: .long) { [self] _ in
                try storage.copyImage(plan, handle: handle, created: { self.made.withLock { $0.append(disk.copy) } }) { bytes in
                    let processed = before + bytes
                    context.report(
                        JobProgress(
                            phase: "converting \(PathName.last(disk.path)) to \(format)",
                            percent: total > 0 ? 95 * Double(processed) / Double(total) : nil,
                            bytesProcessed: processed, bytesRemaining: total - min(total, processed), bytesTotal: total))
                }
            }
            done += disk.bytes
        }
        try Task.checkCancellation(or: "the conversion of \(label)")
        context.report(JobProgress(phase: "pointing \(label) at the new images", percent: 97))
        let disks = self.disks
        if disks.isEmpty {
            return DiskConversion(format: format, converted: [], unchanged: unchanged, kept: [])
        }
        return try await host.blocking("cannot redefine \(label) on its new images") { connection in
            let definition = try XMLTree.parse(try domain.xmlDescription([.inactive, .secure]))
            definition.pointDisks(at: Dictionary(uniqueKeysWithValues: disks.map { ($0.target, ($0.copy, format)) }))
            _ = try connection.defineDomain(xml: definition.serialized())
            return DiskConversion(
                format: format,
                converted: disks.map {
                    .init(
                        target: $0.target, from: $0.path, formats: $0.formats, to: $0.copy, bytes: storage.allocatedBytes($0.copy)
                    )
                },
                unchanged: self.unchanged, kept: disks.map(\.path))
        }
    }

    /// Removes the copies made so far; returns those it could not remove.
    func rollback(host: Host) async -> [String] {
        let files = made.withLock { $0 }
        let storage = host.storage
        return
            (try? await host.blocking("rolling back", evenIfCancelled: true) { _ -> [String] in
                files.reversed().filter { file in (try? storage.delete(file)) == nil }
            }) ?? files
    }
}
