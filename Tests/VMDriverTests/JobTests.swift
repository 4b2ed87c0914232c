import Foundation
import Libvirt
import Testing

@testable import VMDriver

typealias LibvirtCode = LibvirtError.Code

@Suite("Jobs")
struct JobTests {
    @Test func reportsProgressThenItsValue() async throws {
        let gate = AsyncStream.makeStream(of: Void.self)
        let job = Job<Int>(kind: .clone, subject: "VM 'a'") { context in
            context.report(JobProgress(phase: "copying", percent: 50, bytesProcessed: 5, bytesRemaining: 5, bytesTotal: 10))
            for await _ in gate.stream { break }
            context.report(JobProgress(phase: "done", percent: 100))
            return 42
        }
        #expect(job.state == .running)
        #expect(job.returnCode == .jobStarted)
        var seen: [String] = []
        while job.latestProgress == nil { await Task.yield() }
        // Subscribed here, before the gate opens: a task that subscribed later could see only
        // the last report.
        let reports = job.progress
        let observer = Task {
            var phases: [String] = []
            for await progress in reports { phases.append(progress.phase) }
            return phases
        }
        gate.continuation.yield()
        #expect(try await job.wait() == 42)
        seen = await observer.value
        #expect(seen.last == "done")
        #expect(seen.contains("copying"))
        #expect(job.state == .completed)
        #expect(job.returnCode == .completed)
    }

    @Test func waitTimesOutWithCode3AndTheSubjectsState() async throws {
        let job = Job<Void>(kind: .shutdown, subject: "VM 'slow' on host 'h'", describe: { "the VM is running" }) { _ in
            try? await Task.sleep(for: .seconds(30))
        }
        let error = await #expect(throws: VMDriverError.self) { try await job.wait(timeout: .milliseconds(100)) }
        #expect(error?.code == .timeout)
        #expect(error?.message == "shutdown of VM 'slow' on host 'h' did not finish within 0.1 s; the VM is running")
        // Waiting timed out; the job itself goes on until cancelled.
        #expect(job.state == .running)
        job.cancel()
        _ = try? await job.wait()
    }

    @Test func cancelStopsTheOperationAndCallsTheAbortHook() async throws {
        let aborted = AsyncStream.makeStream(of: Void.self)
        let job = Job<Void>(kind: .migrate, subject: "VM 'm'", onCancel: { aborted.continuation.yield() }) {
            _ throws(VMDriverError) in
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                throw VMDriverError(.failed, "migration of VM 'm' was cancelled; it still runs on the source")
            }
        }
        job.cancel()
        job.cancel()  // idempotent
        let error = await #expect(throws: VMDriverError.self) { try await job.wait(timeout: .seconds(5)) }
        #expect(error?.code == .failed)
        #expect(job.state == .cancelled)
        var hooks = 0
        aborted.continuation.finish()
        for await _ in aborted.stream { hooks += 1 }
        #expect(hooks == 1)
    }

    @Test func aFailedJobReportsItsCode() async throws {
        let job = Job<Void>(kind: .clone, subject: "VM 'x'") { _ throws(VMDriverError) in
            throw VMDriverError(.invalidState, "VM 'x' is suspended")
        }
        let error = await #expect(throws: VMDriverError.self) { try await job.wait() }
        #expect(error?.code == .invalidState)
        #expect(job.state == .failed)
        #expect(job.returnCode == .invalidState)
        // A late observer sees the sequence end at once.
        for await _ in job.progress {}
    }
}

@Suite("Return codes")
struct ReturnCodeTests {
    @Test func cimValues() {
        #expect(ReturnCode.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5, 6, 4096])
    }

    @Test(arguments: [
        (LibvirtCode.noSupport, ReturnCode.notSupported), (.argumentUnsupported, .notSupported),
        (.operationUnsupported, .notSupported), (.invalidArgument, .invalidParameter),
        (.noDomain, .invalidParameter), (.xmlError, .invalidParameter), (.operationInvalid, .invalidState),
        (.operationTimeout, .timeout), (.migrateUnsafe, .incompatibleParameters), (.internalError, .failed),
        (.operationFailed, .failed), (.rpc, .failed),
    ])
    func libvirtCodesMapThroughOneTable(libvirt: LibvirtCode, expected: ReturnCode) {
        #expect(ReturnCode(libvirt) == expected)
    }
}
