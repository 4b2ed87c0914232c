import Foundation
import Synchronization

/// What a job does.
public enum JobKind: String, Sendable, Codable {
    case shutdown
    case clone
    case promote
    case migrate
    case convert
    /// A start that waits for the guest to be ready (`start(waitingFor:timeout:)`).
    case start
}

/// Where a job is in its life.
public enum JobState: String, Sendable, Codable {
    case running
    case completed
    case failed
    case cancelled
}

/// A progress report. Fields that do not apply to a job are nil.
public struct JobProgress: Sendable, Codable, Equatable {
    /// What the job is doing now, in words ("waiting for the guest to power off").
    public var phase: String
    /// Percent done, where it is known.
    public var percent: Double?
    public var bytesProcessed: UInt64?
    public var bytesRemaining: UInt64?
    public var bytesTotal: UInt64?
    /// Migration: memory and disk still to send, throughput, the guest's dirty rate, the
    /// pre-copy iteration and the downtime the switch-over would take now.
    public var memoryRemaining: UInt64?
    public var diskRemaining: UInt64?
    public var bytesPerSecond: UInt64?
    public var dirtyPagesPerSecond: UInt64?
    public var iteration: UInt64?
    public var expectedDowntimeMilliseconds: UInt64?

    public init(
        phase: String, percent: Double? = nil, bytesProcessed: UInt64? = nil, bytesRemaining: UInt64? = nil,
        bytesTotal: UInt64? = nil
    ) {
        self.phase = phase
        self.percent = percent
        self.bytesProcessed = bytesProcessed
        self.bytesRemaining = bytesRemaining
        self.bytesTotal = bytesTotal
    }
}

/// What a running operation may do: report progress and see whether it was cancelled.
public struct JobContext: Sendable {
    fileprivate let reportProgress: @Sendable (JobProgress) -> Void

    /// Publishes a progress report to every observer of the job.
    public func report(_ progress: JobProgress) { reportProgress(progress) }
}

/// A long operation started by VMDriver: the vendors' job handle (VIX job, Parallels PHT_JOB,
/// CIM_ConcreteJob) in Swift's shape. It is returned at once, runs in the background, and ends
/// with a value or a `VMDriverError`.
public final class Job<Value: Sendable>: Sendable {
    public let id: UUID
    public let kind: JobKind
    /// What the job acts on, for messages: "VM 'web' on host 'kvm1'".
    public let subject: String
    public let startTime: Date

    private struct Storage {
        var state: JobState = .running
        var outcome: Result<Value, VMDriverError>?
        var latest: JobProgress?
        /// Waiters for the outcome; resumed with nil when their task is cancelled.
        var waiters: [UUID: CheckedContinuation<Result<Value, VMDriverError>?, Never>] = [:]
        /// Waiters whose task was cancelled before they got to register.
        var abandoned: Set<UUID> = []
        var observers: [UUID: AsyncStream<JobProgress>.Continuation] = [:]
        var cancelRequested = false
    }

    private let storage = Mutex(Storage())
    private let describe: @Sendable () async -> String
    private let onCancel: @Sendable () async -> Void
    /// The operation. The job owns it: cancelling the job cancels it.
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Starts `operation` at once.
    /// - Parameters:
    ///   - describe: says where the subject is now (for a timeout message), e.g. "the VM is running".
    ///   - onCancel: interrupts the underlying work (abort a libvirt job, stop a child process).
    ///     It runs in a task of its own, never on the thread that calls `cancel()`; the
    ///     operation also sees Swift task cancellation.
    init(
        kind: JobKind, subject: String,
        describe: @escaping @Sendable () async -> String = { "" },
        onCancel: @escaping @Sendable () async -> Void = {},
        operation: @escaping @Sendable (JobContext) async throws(VMDriverError) -> Value
    ) {
        self.id = UUID()
        self.kind = kind
        self.subject = subject
        self.startTime = Date()
        self.describe = describe
        self.onCancel = onCancel
        let context = JobContext { [weak self] progress in self?.publish(progress) }
        let started = Task { [self] in
            let outcome: Result<Value, VMDriverError>
            do throws(VMDriverError) {
                outcome = .success(try await operation(context))
            } catch {
                outcome = .failure(error)
            }
            finish(outcome)
        }
        task.withLock { $0 = started }
        // A cancel() that raced with start-up found no task to cancel: do it now.
        if storage.withLock({ $0.cancelRequested }) { started.cancel() }
    }

    /// The job's state now.
    public var state: JobState { storage.withLock { $0.state } }

    /// `.jobStarted` (4096) while running, then the code of the outcome.
    public var returnCode: ReturnCode {
        storage.withLock { storage in
            switch storage.outcome {
            case nil: .jobStarted
            case .success: .completed
            case .failure(let error): error.code
            }
        }
    }

    /// The latest progress report, if any.
    public var latestProgress: JobProgress? { storage.withLock { $0.latest } }

    /// Progress reports from now until the job ends (the latest one first). Each access makes a
    /// new independent sequence; a slow reader sees the newest reports, not every one.
    public var progress: AsyncStream<JobProgress> {
        AsyncStream(bufferingPolicy: .bufferingNewest(16)) { continuation in
            let key = UUID()
            let finished = storage.withLock { storage in
                if let latest = storage.latest { continuation.yield(latest) }
                guard storage.outcome == nil else { return true }
                storage.observers[key] = continuation
                return false
            }
            if finished { continuation.finish() }
            continuation.onTermination = { [weak self] _ in
                _ = self?.storage.withLock { $0.observers.removeValue(forKey: key) }
            }
        }
    }

    /// Asks the job to stop: it aborts the underlying work where it can; the job then ends with
    /// state `.cancelled` and a code 2 error saying what was undone, unless it had already finished.
    public func cancel() {
        let first = storage.withLock { storage in
            defer { storage.cancelRequested = true }
            return storage.outcome == nil && !storage.cancelRequested
        }
        guard first else { return }
        task.withLock { $0?.cancel() }
        Task { [onCancel] in await onCancel() }
    }

    /// Waits for the job's result.
    /// - Parameter timeout: how long to wait; nil waits as long as the job runs. Reaching it does
    ///   not stop the job (call `cancel()` for that).
    /// - Throws: the job's `VMDriverError`; code 3 when `timeout` passes first, with a message
    ///   that says where the VM is now; code 2 when the waiting task is cancelled (the job goes on).
    public func wait(timeout: Duration? = nil) async throws(VMDriverError) -> Value {
        if let outcome = storage.withLock({ $0.outcome }) { return try outcome.get() }
        // The outcome raced against the deadline; the caller's cancellation reaches both.
        let race = await withTaskGroup(of: WaitOutcome.self) { group in
            group.addTask { await self.outcome() }
            if let timeout {
                group.addTask {
                    do {
                        try await Task.sleep(for: timeout)
                        return .timedOut
                    } catch {
                        return .cancelled
                    }
                }
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
        switch race {
        case .finished(let outcome):
            return try outcome.get()
        case .timedOut:
            let now = await describe()
            throw VMDriverError(
                .timeout,
                "\(kind.rawValue) of \(subject) did not finish within \(Self.format(timeout ?? .zero))"
                    + (now.isEmpty ? "" : "; \(now)"))
        case .cancelled:
            throw VMDriverError(
                .failed, "waiting for \(kind.rawValue) of \(subject) was cancelled; the job goes on", cause: CancellationError())
        }
    }

    /// For a job started inside another job's operation (a cold migration's shutdown, a
    /// clone's copy): waits for its end, rollback included, and cancels it when the waiting
    /// task is cancelled, so cancelling the outer job reaches it.
    func nestedValue() async throws(VMDriverError) -> Value {
        let running = task.withLock { $0 }
        await withTaskCancellationHandler {
            await running?.value
        } onCancel: {
            cancel()
        }
        // The task has ended, so finish() has stored the outcome.
        guard let outcome = storage.withLock({ $0.outcome }) else {
            throw VMDriverError(.failed, "\(kind.rawValue) of \(subject) ended without an outcome")
        }
        return try outcome.get()
    }

    private enum WaitOutcome: Sendable {
        case finished(Result<Value, VMDriverError>)
        case timedOut
        case cancelled
    }

    /// The outcome once there is one, or `.cancelled` as soon as the calling task is cancelled,
    /// whichever comes first; a cancellation that comes before the waiter is registered is not lost.
    private func outcome() async -> WaitOutcome {
        let key = UUID()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, VMDriverError>?, Never>) in
                let now: Result<Value, VMDriverError>?? = storage.withLock { storage in
                    let abandoned = storage.abandoned.remove(key) != nil
                    if let outcome = storage.outcome { return .some(outcome) }
                    if abandoned { return .some(nil) }
                    storage.waiters[key] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = storage.withLock { storage -> CheckedContinuation<Result<Value, VMDriverError>?, Never>? in
                if let waiter = storage.waiters.removeValue(forKey: key) { return waiter }
                // Not registered yet: the registration sees this and returns at once.
                if storage.outcome == nil { storage.abandoned.insert(key) }
                return nil
            }
            waiter?.resume(returning: nil)
        }
        return outcome.map(WaitOutcome.finished) ?? .cancelled
    }

    private func publish(_ progress: JobProgress) {
        let observers = storage.withLock { storage in
            storage.latest = progress
            return Array(storage.observers.values)
        }
        for observer in observers { observer.yield(progress) }
    }

    private func finish(_ outcome: Result<Value, VMDriverError>) {
        let (waiters, observers) = storage.withLock { storage in
            storage.outcome = outcome
            switch outcome {
            case .success: storage.state = .completed
            case .failure: storage.state = storage.cancelRequested ? .cancelled : .failed
            }
            defer {
                storage.waiters = [:]
                storage.abandoned = []
                storage.observers = [:]
            }
            return (Array(storage.waiters.values), Array(storage.observers.values))
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
        for observer in observers { observer.finish() }
    }

    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
