import Foundation
import Synchronization
import VMDriver

enum Render {
    static func json<T: Encodable>(_ value: T) -> String { encode(value, pretty: true) }

    /// One line of JSON, for NDJSON streams.
    static func jsonLine<T: Encodable>(_ value: T) -> String { encode(value, pretty: false) }

    private static func encode<T: Encodable>(_ value: T, pretty: Bool) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting =
            pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        // ISO 8601 with milliseconds: an evacuation's moves start and end within a second.
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func details(_ vm: VMDetails) -> String {
        var lines = [
            "Name:        \(vm.name)",
            "UUID:        \(vm.uuid.uuidString.lowercased())",
            "State:       \(vm.state)",
            "Host:        \(vm.host.name) (\(vm.host.uri))",
            "Type:        \(vm.domainType)",
            "vCPUs:       \(vm.vcpus)",
            "Memory:      \(vm.memoryMiB) MiB (max \(vm.maxMemoryMiB) MiB)",
            "Persistent:  \(vm.persistent ? "yes" : "no")",
            "Disks:",
        ]
        if vm.disks.isEmpty { lines.append("  (none)") }
        for disk in vm.disks {
            var line = "  \(disk.target) \(disk.device) \(disk.path ?? "-") \(disk.format ?? "?")"
            if disk.readOnly { line += " read-only" }
            lines.append(line)
            if let chain = disk.backingChain {
                for image in chain { lines.append("      backed by \(image.path) (\(image.format ?? "?"))") }
            }
            if let note = disk.chainNote { lines.append("      (\(note))") }
        }
        lines.append("NICs:")
        if vm.nics.isEmpty { lines.append("  (none)") }
        for nic in vm.nics {
            lines.append("  \(nic.mac ?? "-") \(nic.type)\(nic.source.map { " \($0)" } ?? "")\(nic.model.map { " \($0)" } ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}

extension Render {
    static func snapshot(_ info: SnapshotInfo) -> String {
        var lines = [
            "\(info.name)  \(info.creationTime.map { $0.formatted(.iso8601) } ?? "-")  \(info.vmState ?? "")"
        ]
        for disk in info.disks {
            lines.append("  \(disk.target): frozen \(disk.frozenImage ?? "?"), then \(disk.overlay)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Draws a job's progress on stderr when it is a terminal; silent otherwise.
/// On a terminal, one line redrawn in place; otherwise (logs, CI) a plain line at most once a
/// second.
final class ProgressBar: Sendable {
    /// Waits for `job`, drawing its progress meanwhile.
    /// Ctrl-C and SIGTERM cancel it meanwhile (after `Interrupts.shared.arm()`).
    static func follow<T: Sendable>(_ job: Job<T>) async throws(VMDriverError) -> T {
        Interrupts.shared.register(job)
        defer { Interrupts.shared.unregister() }
        let bar = ProgressBar()
        let watcher = Task {
            for await progress in job.progress { bar.draw(progress) }
        }
        let outcome: Swift.Result<T, VMDriverError>
        do throws(VMDriverError) {
            outcome = .success(try await job.wait())
        } catch {
            outcome = .failure(error)
        }
        watcher.cancel()
        bar.finish()
        return try outcome.get()
    }

    let terminal = isatty(STDERR_FILENO) == 1
    private let lastLine = Mutex<ContinuousClock.Instant?>(nil)

    func draw(_ progress: JobProgress) {
        let width = 30
        let filled = Int(((progress.percent ?? 0) / 100 * Double(width)).rounded()).clamped(0, width)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = progress.percent.map { String(format: "%3.0f%%", $0) } ?? "  ? "
        let bytes =
            progress.bytesProcessed.map { done in
                " " + Self.size(done) + (progress.bytesTotal.map { " of " + Self.size($0) } ?? "")
            } ?? ""
        var extra = ""
        if let memory = progress.memoryRemaining { extra += " mem left \(Self.size(memory))" }
        if let disk = progress.diskRemaining, disk > 0 { extra += " disk left \(Self.size(disk))" }
        if let rate = progress.bytesPerSecond { extra += " \(Self.size(rate))/s" }
        if let dirty = progress.dirtyPagesPerSecond { extra += " dirty \(dirty) pages/s" }
        if let downtime = progress.expectedDowntimeMilliseconds { extra += " downtime ~\(downtime) ms" }
        let line = "[\(bar)] \(percent)\(bytes) \(progress.phase)\(extra)"
        if terminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
            return
        }
        guard progress.percent != nil else { return }
        let now = ContinuousClock.now
        let due = lastLine.withLock { last in
            guard last.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
            last = now
            return true
        }
        if due { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
    }

    static func size(_ bytes: UInt64) -> String {
        bytes >= 1 << 30
            ? String(format: "%.2f GiB", Double(bytes) / 1_073_741_824)
            : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    func finish() {
        guard terminal else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

extension Int {
    func clamped(_ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(self, low), high) }
}
