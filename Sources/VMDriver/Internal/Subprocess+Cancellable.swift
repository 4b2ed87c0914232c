import Foundation
import Synchronization

extension Subprocess {
    /// A child process that can be stopped from another task (a cancelled job).
    final class Handle: Sendable {
        private let process = Mutex<Process?>(nil)
        private let stopped = Atomic(false)

        func attach(_ process: Process) {
            self.process.withLock { $0 = process }
            if stopped.load(ordering: .acquiring) { process.terminate() }
        }

        /// Sends SIGTERM to the child, now or as soon as it starts.
        func terminate() {
            stopped.store(true, ordering: .releasing)
            process.withLock { process in
                if let process, process.isRunning { process.terminate() }
            }
        }

        var wasTerminated: Bool { stopped.load(ordering: .acquiring) }
    }

    /// Like `run`, but the child can be stopped through `handle`, and `onStdout` sees its
    /// standard output as it comes (qemu-img's progress). Blocking: call from the pool.
    static func run(
        _ executable: String, _ arguments: [String], handle: Handle, onStdout: (String) -> Void = { _ in }
    ) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        handle.attach(process)
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        var outData = Data()
        while true {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            outData.append(chunk)
            onStdout(String(decoding: chunk, as: UTF8.self))
        }
        group.wait()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, stdout: outData,
            stderr: String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
