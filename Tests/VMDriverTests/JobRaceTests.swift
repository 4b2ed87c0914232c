import Dispatch
import Foundation
import Synchronization
import Testing

@testable import VMDriver

/// The job core's races, each driven on purpose: a waiter cancelled before it registers, a
/// deadline that passes before it does, a cancel whose abort hook blocks, a nested job, a
/// control call while the long lane is full. Each would hang (and hit the time limit) or fail
/// where the race is lost.
@Suite("Job core races", .timeLimit(.minutes(1)))
struct JobRaceTests {
    /// A job that runs until it is cancelled.
    static func endless() -> Job<Void> {
        Job<Void>(kind: .migrate, subject: "VM 'r'") { _ throws(VMDriverError) in
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(30)) }
            throw VMDriverError(.failed, "cancelled")
        }
    }

    @Test func aWaiterCancelledBeforeItRegistersStillReturns() async throws {
        let job = Self.endless()
        defer { job.cancel() }
        for round in 0..<200 {
            // Cancelled before (or just after) it starts: both orders occur over the rounds.
            let waiter = Task { () async throws -> Void in try await job.wait() }
            if round % 2 == 0 { await Task.yield() }
            waiter.cancel()
            let outcome = await waiter.result
            guard case .failure(let error) = outcome else {
                Issue.record("round \(round): the wait returned a value for a running job")
                return
            }
            #expect((error as? VMDriverError)?.code == .failed)
        }
        #expect(job.state == .running, "cancelling a wait must not cancel the job")
    }

    @Test func aZeroTimeoutEndsTheWaitWithCode3() async throws {
        let job = Self.endless()
        defer { job.cancel() }
        for _ in 0..<200 {
            let error = await #expect(throws: VMDriverError.self) { try await job.wait(timeout: .zero) }
            #expect(error?.code == .timeout)
        }
    }

    @Test func aFinishedJobWinsOverAZeroTimeout() async throws {
        let job = Job<Int>(kind: .clone, subject: "VM 'f'") { _ in 7 }
        _ = try await job.wait()
        for _ in 0..<50 { #expect(try await job.wait(timeout: .zero) == 7) }
    }

    @Test func cancelDoesNotRunTheAbortHookOnTheCallersThread() async throws {
        // The hook blocks until the test lets it go, after cancel() has returned: run on the
        // caller's thread, it would block cancel() itself and time out here.
        let release = DispatchSemaphore(value: 0)
        let timedOut = Counter()
        let job = Job<Void>(
            kind: .migrate, subject: "VM 'h'",
            onCancel: {
                if release.wait(timeout: .now() + 5) == .timedOut { timedOut.add() }
            }
        ) { _ throws(VMDriverError) in
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(30)) }
            throw VMDriverError(.failed, "cancelled")
        }
        job.cancel()
        release.signal()
        _ = try? await job.wait(timeout: .seconds(10))
        #expect(job.state == .cancelled)
        let blockedTheCaller = timedOut.value > 0
        #expect(!blockedTheCaller, "the abort hook ran on the thread that called cancel()")
    }

    @Test func cancellingAJobCancelsTheJobItWaitsFor() async throws {
        let inner = Mutex<Job<Void>?>(nil)
        let innerRolledBack = Counter()
        let outer = Job<Void>(kind: .migrate, subject: "VM 'o'") { _ throws(VMDriverError) in
            let nested = Job<Void>(kind: .shutdown, subject: "VM 'o'") { _ throws(VMDriverError) in
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(30)) }
                // Its own rollback takes a while; the outer job must wait for it.
                try? await Task.sleep(for: .milliseconds(1))
                usleep(200_000)
                innerRolledBack.add()
                throw VMDriverError(.failed, "shutdown cancelled")
            }
            inner.withLock { $0 = nested }
            try await nested.nestedValue()
        }
        while inner.withLock({ $0 }) == nil { await Task.yield() }
        outer.cancel()
        let error = await #expect(throws: VMDriverError.self) { try await outer.wait(timeout: .seconds(10)) }
        #expect(error?.code == .failed)
        #expect(inner.withLock { $0 }?.state == .cancelled)
        let rolledBack = innerRolledBack.value > 0
        #expect(rolledBack, "the outer job ended before its nested job had rolled back")
    }
}

@Suite("Wakeup", .timeLimit(.minutes(1)))
struct WakeupTests {
    @Test func aPeriodThatEndsBeforeTheWaiterRegistersStillEndsTheWait() async {
        let wakeup = Wakeup()
        for _ in 0..<500 { await wakeup.wait(upTo: .zero) }
    }

    @Test func anEventBeforeTheWaitIsNotLost() async {
        let wakeup = Wakeup()
        wakeup.fire()
        let started = ContinuousClock.now
        await wakeup.wait(upTo: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func anEventEndsAWaitEarly() async {
        let wakeup = Wakeup()
        let started = ContinuousClock.now
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            wakeup.fire()
        }
        await wakeup.wait(upTo: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}

@Suite("Blocking pool", .timeLimit(.minutes(1)))
struct BlockingPoolTests {
    /// Starts `count` calls on `pool` that block until `gate` is signalled; returns once all run.
    static func block(_ count: Int, on pool: BlockingPool, gate: DispatchSemaphore) async -> [Task<Void, Never>] {
        let running = Counter()
        let tasks = (0..<count).map { _ in
            Task {
                _ = try? await pool.run {
                    running.add()
                    gate.wait()
                }
            }
        }
        while running.value < count { try? await Task.sleep(for: .milliseconds(5)) }
        return tasks
    }

    @Test func aQuickCallNeverWaitsBehindABlockedOne() async throws {
        // One idle thread; two calls queued back to back: the second must get a thread of its
        // own even though the idle thread has not yet woken for the first.
        for _ in 0..<50 {
            let pool = BlockingPool(name: "test", maximumThreads: 8)
            _ = try await pool.run { 0 }
            let gate = DispatchSemaphore(value: 0)
            let blocked = Task { _ = try? await pool.run { gate.wait() } }
            let quick = try await pool.run { 1 }
            #expect(quick == 1)
            gate.signal()
            await blocked.value
        }
    }

    @Test func controlCallsDoNotQueueBehindLongCalls() async throws {
        // More long calls than the control lane has threads, all blocked at once.
        let gate = DispatchSemaphore(value: 0)
        let long = await Self.block(24, on: BlockingPool.Lane.long.pool, gate: gate)
        let answer = try await BlockingPool.Lane.control.pool.run { 42 }
        #expect(answer == 42)
        for _ in long { gate.signal() }
        for task in long { await task.value }
    }

    @Test func aCallCancelledBeforeItStartsNeverRuns() async throws {
        let pool = BlockingPool(name: "test", maximumThreads: 1)
        let gate = DispatchSemaphore(value: 0)
        let blocked = Task { _ = try? await pool.run { gate.wait() } }
        while pool.threadCount == 0 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(20))
        let ran = Counter()
        let queued = Task { try await pool.run { ran.add() } }
        queued.cancel()
        gate.signal()
        await blocked.value
        await #expect(throws: CancellationError.self) { try await queued.value }
        let ranAnyway = ran.value > 0
        #expect(!ranAnyway)
    }
}

/// A count shared with closures that escape (an `Atomic` cannot be captured by them).
final class Counter: Sendable {
    private let count = Atomic(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
