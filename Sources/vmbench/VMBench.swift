import ArgumentParser
import Foundation
import VMDriver

/// Library-level benchmarks: VMDriver called in-process, no process start per operation.
/// `scripts/bench.sh` runs these beside their anchors and writes the results (BENCHMARKS.md).
/// Every subcommand prints one JSON object on stdout; times are in seconds.
@main
struct VMBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmbench",
        abstract: "VMDriver's library-level benchmarks (used by scripts/bench.sh).",
        subcommands: [CloneLatency.self, OpenLoop.self, ListLoop.self, Fleet.self, Spawn.self]
    )
}

struct Common: ParsableArguments {
    @Option(name: [.short, .long], help: "libvirt URI.")
    var connect = "qemu:///system"
}

/// Seconds between two instants of the continuous clock.
func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

func emit(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

/// Turns a VMDriverError into a message and its CIM code as the exit status.
func run(_ body: () async throws(VMDriverError) -> Void) async throws {
    do {
        try await body()
    } catch {
        FileHandle.standardError.write(Data("vmbench: \(error.message) (code \(error.code.rawValue))\n".utf8))
        throw ExitCode(error.code.exitStatus)
    }
}

/// Linked (or, with `--full`, full) clone latency: `count` clones made one after another, each timed from the call to
/// `clone` to the job's result (overlay made and clone defined); each clone is deleted, untimed,
/// before the next.
struct CloneLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clone-latency")
    @OptionGroup var common: Common
    @Argument var source: String
    @Option var count = 100
    @Option var prefix = "vmdriver-bench-lat"
    @Option var dest: String?
    @Option(help: "Untimed clones made first.") var warmup = 3
    @Flag(help: "Full clones (a copy of each disk) instead of linked ones.") var full = false

    func run() async throws {
        try await vmbench.run { () async throws(VMDriverError) in
            let host = try await Host.connect(common.connect)
            let vm = try await host.open(source)
            let clock = ContinuousClock()
            var samples: [Double] = []
            for i in 0..<(warmup + count) {
                let name = "\(prefix)-\(i)"
                let start = clock.now
                let clone = try await vm.clone(name: name, type: full ? .full : .linked, destination: dest).wait()
                let elapsed = seconds(clock.now - start)
                if i >= warmup { samples.append(elapsed) }
                _ = try await clone.delete(withStorage: true)
            }
            try await host.close()
            try? emit(["samples": samples])
        }
    }
}

/// `host.open(name)` in a loop on one connection.
struct OpenLoop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "open")
    @OptionGroup var common: Common
    @Argument var name: String
    @Option var count = 10_000

    func run() async throws {
        try await vmbench.run { () async throws(VMDriverError) in
            let host = try await Host.connect(common.connect)
            _ = try await host.open(name)
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<count { _ = try await host.open(name) }
            let total = seconds(clock.now - start)
            try await host.close()
            try? emit(["calls": count, "seconds": total])
        }
    }
}

/// `host.list(all: true)` in a loop on one connection.
struct ListLoop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list")
    @OptionGroup var common: Common
    @Option var count = 100

    func run() async throws {
        try await vmbench.run { () async throws(VMDriverError) in
            let host = try await Host.connect(common.connect)
            var vms = try await host.list(all: true).count
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<count { vms = try await host.list(all: true).count }
            let total = seconds(clock.now - start)
            try await host.close()
            try? emit(["calls": count, "seconds": total, "vms": vms])
        }
    }
}

/// `count` linked clones of one golden VM, made and started concurrently; timed until every
/// clone is started (libvirt says running). The harness removes them.
struct Fleet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fleet")
    @OptionGroup var common: Common
    @Argument var source: String
    @Option var count = 20
    @Option var prefix = "vmdriver-bench-fleet"
    @Option var dest: String?
    @Flag(inversion: .prefixedNo, help: "Start each clone once it is made.") var start = true
    @Option(help: "Connections the starts are spread over.") var connections = 4

    func run() async throws {
        try await vmbench.run { () async throws(VMDriverError) in
            let clock = ContinuousClock()
            let began = clock.now
            let host = try await Host.connect(common.connect)
            let golden = try await host.open(source)
            // libvirtd serves at most max_client_requests (5) calls of one connection at a time,
            // and a start keeps its call busy for half a second: starts go round the connections.
            var starters = [host]
            for _ in 1..<max(connections, 1) { starters.append(try await Host.connect(common.connect)) }
            let hosts = starters
            let dest = self.dest
            let prefix = self.prefix
            let start = self.start
            // Each task's error is a VMDriverError; the group's type erases it.
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in 0..<count {
                        group.addTask {
                            let clone = try await golden.clone(name: "\(prefix)-\(i)", type: .linked, destination: dest).wait()
                            if start { try await hosts[i % hosts.count].open(clone.uuid.uuidString).start() }
                        }
                    }
                    try await group.waitForAll()
                }
            } catch let error as VMDriverError {
                throw error
            } catch {
                throw VMDriverError(.failed, "fleet: \(error)")
            }
            let total = seconds(clock.now - began)
            for host in hosts { try await host.close() }
            try? emit(["clones": count, "seconds": total, "started": start, "connections": hosts.count])
        }
    }
}
