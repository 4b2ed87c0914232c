import ArgumentParser
import Foundation
import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Stream a host's lifecycle events and job progress (a migration's passes too) until Ctrl-C.",
        discussion: """
            One line per event: libvirt's lifecycle events as they come (started, suspended, resumed, stopped … \
            with their detail: booted, migrated, destroyed …), and every --interval the job of each VM that runs \
            one, whoever started it (this or another vmctl, virsh): progress, memory pass, dirty rate, and the \
            VMDriver operation and process where its record is on the VM; then a line when it ends. --json prints \
            one JSON object per line (NDJSON). Watch both hosts of a migration with one vmctl each.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("Only this VM (name).", valueName: "vm")) var vm: String?
    @Option(help: ArgumentHelp("Seconds between looks at the jobs.", valueName: "s")) var interval = 1.0

    func validate() throws {
        if !(interval >= 0.1 && interval <= 3600) { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
    }

    func run() async throws {
        // Lines reach a pipe as they are printed; Ctrl-C and SIGTERM end the watch, status 0.
        Self.endOnSignals()
        try await root.connection.withHost { host async throws(VMDriverError) in
            let events = try await host.watch(vm: vm, interval: .milliseconds(Int64(interval * 1000)))
            for await event in events {
                // Written at once, one line per write: a reader of the pipe gets each as it comes.
                FileHandle.standardOutput.write(Data(((output.json ? Render.jsonLine(event) : Self.line(event)) + "\n").utf8))
            }
        }
    }

    static func line(_ event: HostEvent) -> String {
        let time = event.time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        var line = "\(time) \(event.host) \(event.vm) "
        switch event.kind {
        case .lifecycle:
            line += "\(event.event ?? "?") (\(event.detail ?? "?"))"
        case .jobEnded:
            line += "job ended"
        case .job:
            let job = event.job
            line += "job \(job?.operation?.rawValue ?? "?")"
            if let total = job?.dataTotal, total > 0, let done = job?.dataProcessed {
                line += String(format: " %.0f%%", 100 * Double(done) / Double(total))
            }
            if let pass = job?.memoryIteration { line += " pass \(pass)" }
            if let left = job?.memoryRemaining { line += " mem left \(ProgressBar.size(left))" }
            if let rate = job?.bytesPerSecond { line += " \(ProgressBar.size(rate))/s" }
            if let dirty = job?.dirtyPagesPerSecond { line += " dirty \(dirty) pages/s" }
            if let operation = event.operation { line += " [\(operation)]" }
        }
        return line
    }

    /// Kept for the life of the process: the watch ends when a signal comes.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    private static func endOnSignals() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { Glibc.exit(0) }
            source.resume()
            sources.append(source)
        }
    }
}
