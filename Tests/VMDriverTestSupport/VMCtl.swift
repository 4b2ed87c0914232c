import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// This package's folder (the one with Package.swift).
package let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The built vmctl, as a user runs it: to its end, or started as a terminal starts a command.
/// It never inherits the caller's defaults for the host or the PKI path
/// (`VMDRIVER_CONNECT`, `LIBVIRT_DEFAULT_URI`, `VMDRIVER_PKIPATH`).
package enum VMCtl {
    package struct Output {
        package var status: Int32
        /// Ended by a signal (a crash), not by exiting.
        package var crashed: Bool
        package var stdout: String
        package var stderr: String
        /// What it left in its working folder, which starts empty: no argument may turn into a file.
        package var leftovers: [String]

        package func json() throws -> Any {
            try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        }
    }

    /// `.build/debug/vmctl` of this package, or $VMCTL.
    package static var path: String {
        if let path = ProcessInfo.processInfo.environment["VMCTL"] { return path }
        return packageRoot.appendingPathComponent(".build/debug/vmctl").path
    }

    /// This process's environment without vmctl's defaults, with `extra` on top.
    package static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["VMDRIVER_CONNECT", "LIBVIRT_DEFAULT_URI", "VMDRIVER_PKIPATH"] { environment.removeValue(forKey: name) }
        return environment.merging(extra) { $1 }
    }

    package static func run(_ arguments: String...) throws -> Output { try run(arguments) }

    /// Runs vmctl to its end in a fresh, empty working folder.
    package static func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Output {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.environment = environment(extra)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both pipes at once: a message that echoes a 100 kB argument fills one pipe while
        // the other is being read.
        let group = DispatchGroup()
        nonisolated(unsafe) var stderr = Data()
        group.enter()
        DispatchQueue.global().async {
            stderr = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
            leftovers: (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
    }

    /// vmctl started as a terminal starts a command: in a process group of its own, with
    /// default signal handling (a non-interactive shell's background job would ignore SIGINT),
    /// so `interrupt()` is what Ctrl-C does: SIGINT to the whole group. Its output goes to files.
    package final class Terminal {
        package let pid: pid_t
        private let output: URL
        private let errors: URL
        package private(set) var status: Int32?

        package init(_ arguments: [String]) throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            output = folder.appendingPathComponent("stdout")
            errors = folder.appendingPathComponent("stderr")
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, errors.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var none = sigset_t()
            var all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
            let tool = VMCtl.path
            let argv: [UnsafeMutablePointer<CChar>?] = ([tool] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let envp: [UnsafeMutablePointer<CChar>?] = VMCtl.environment().map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { envp.forEach { free($0) } }
            var child: pid_t = 0
            let spawned = posix_spawn(&child, tool, &actions, &attributes, argv, envp)
            guard spawned == 0 else { throw ToolFailed(tool: tool, status: spawned, stderr: "posix_spawn failed") }
            pid = child
        }

        /// Ctrl-C at a terminal: SIGINT to the command's whole process group.
        package func interrupt(_ signal: Int32 = SIGINT) { kill(-pid, signal) }

        /// The exit status once it has exited, nil while it still runs at the deadline.
        package func wait(seconds: Double) async -> Int32? {
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            while status == nil && ContinuousClock.now < deadline {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                } else {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            return status
        }

        package var stdout: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        package var stderr: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        /// Kills it if it still runs (a failed test) and removes its output files.
        package func cleanUp() {
            if status == nil {
                kill(-pid, SIGKILL)
                var raw: Int32 = 0
                waitpid(pid, &raw, 0)
            }
            try? FileManager.default.removeItem(at: output.deletingLastPathComponent())
        }
    }
}

extension VMCtl.Terminal {
    /// `vmctl -c URI clone SOURCE CLONE --full` started as a terminal starts it, returned once a
    /// copy process reads `disk` (the clone is mid-copy). The caller cleans it up. When no copy
    /// starts within a minute it is stopped and this throws, with its stderr.
    package static func fullClone(
        of source: String, as clone: String, copying disk: URL, uri: String = Integration.uri
    ) async throws -> VMCtl.Terminal {
        let command = try VMCtl.Terminal(["-c", uri, "clone", source, clone, "--full"])
        guard await Integration.waitFor(60, { !copyProcesses(reading: disk.path).isEmpty }) else {
            let stderr = command.stderr
            command.cleanUp()
            throw ToolFailed(tool: "vmctl clone", status: -1, stderr: "the copy of \(disk.path) never started: \(stderr)")
        }
        return command
    }
}
