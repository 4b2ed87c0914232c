import Foundation
import VMDriver

/// A job handle of the C API (VIX job, Parallels PHT_JOB, CIM_ConcreteJob): an operation that
/// runs on VMDriver's threads while the caller waits, polls or cancels.
///
/// Handles it produced (the VM a VixVM_Open found, a clone) belong to the job until a caller
/// asks for them: the caller then gets a reference of its own, and the job's goes with the job.
final class APIJob: HandleObject, @unchecked Sendable {
    enum Payload: Sendable {
        case none
        case handle(Int32)
        case handles([Int32])
    }

    /// Guards everything below and signals the end.
    private let condition = NSCondition()
    private var outcome: Result<Payload, VMDriverError>?
    private var percent = 0
    private var cancelHook: (@Sendable () -> Void)?
    private var cancelRequested = false
    /// A description of the step running now (CIM's job status, progress events).
    private var status = "running"
    private var wrongState: UInt64 = 3

    /// The vendor error a wrong-state failure (code 5) of this job's call becomes (VIX:
    /// VIX_E_VM_IS_RUNNING or VIX_E_VM_NOT_RUNNING, by call).
    var wrongStateError: UInt64 {
        get {
            condition.lock()
            defer { condition.unlock() }
            return wrongState
        }
        set {
            condition.lock()
            wrongState = newValue
            condition.unlock()
        }
    }

    /// Starts `body` on a VMDriver thread and returns the job's handle. `finished` runs on that
    /// thread once the outcome is recorded (VIX's callbackProc, with the handle).
    static func start(
        finished: (@Sendable (Int32) -> Void)? = nil,
        _ body: @escaping @Sendable (APIJob) async throws(VMDriverError) -> Payload
    ) -> Int32 {
        let job = APIJob()
        let handle = Handles.shared.add(job)
        // The task holds its own reference: the caller may release the job before it ends.
        Handles.shared.retain(handle)
        Task.detached {
            let result: Result<Payload, VMDriverError>
            do throws(VMDriverError) {
                result = .success(try await body(job))
            } catch {
                result = .failure(error)
            }
            job.finish(result)
            finished?(handle)
            Handles.shared.release(handle)
        }
        return handle
    }

    /// A job that ended before it began (bad arguments): the caller still gets a job to wait on.
    static func failed(_ error: VMDriverError, finished: (@Sendable (Int32) -> Void)? = nil) -> Int32 {
        start(finished: finished) { _ throws(VMDriverError) in throw error }
    }

    private func finish(_ result: Result<Payload, VMDriverError>) {
        condition.lock()
        outcome = result
        if case .success = result { percent = 100 }
        cancelHook = nil
        condition.broadcast()
        condition.unlock()
    }

    private var kept: [UnsafeMutablePointer<CChar>] = []

    /// A C string that lives as long as the job (CIM_ConcreteJob_GetErrorDescription's).
    func keep(_ text: String) -> UnsafePointer<CChar>? {
        guard let copy = strdup(text) else { return nil }
        condition.lock()
        kept.append(copy)
        condition.unlock()
        return UnsafePointer(copy)
    }

    deinit {
        for pointer in kept { free(pointer) }
        if case .success(let payload)? = outcome {
            switch payload {
            case .none: break
            case .handle(let handle): Handles.shared.release(handle)
            case .handles(let handles): for handle in handles { Handles.shared.release(handle) }
            }
        }
    }

    /// Waits for the end; nil when `timeout` passed first.
    func wait(timeout: Duration? = nil) -> Result<Payload, VMDriverError>? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = timeout.map {
            Date(timeIntervalSinceNow: Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)
        }
        while outcome == nil {
            if let deadline {
                if !condition.wait(until: deadline) { return outcome }
            } else {
                condition.wait()
            }
        }
        return outcome
    }

    /// The outcome if the job has ended.
    var current: Result<Payload, VMDriverError>? {
        condition.lock()
        defer { condition.unlock() }
        return outcome
    }

    var progress: Int {
        get {
            condition.lock()
            defer { condition.unlock() }
            return percent
        }
        set {
            condition.lock()
            percent = max(0, min(100, newValue))
            condition.unlock()
        }
    }

    var statusText: String {
        get {
            condition.lock()
            defer { condition.unlock() }
            return status
        }
        set {
            condition.lock()
            status = newValue
            condition.unlock()
        }
    }

    /// Gives the job the way to cancel what runs now (a VMDriver job's `cancel`). A cancel
    /// asked for before the hook was set runs it at once.
    func onCancel(_ hook: @escaping @Sendable () -> Void) {
        condition.lock()
        let now = cancelRequested
        cancelHook = now ? nil : hook
        condition.unlock()
        if now { hook() }
    }

    var isCancelRequested: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelRequested
    }

    /// Asks the job to stop; false when it had already ended.
    @discardableResult
    func cancel() -> Bool {
        condition.lock()
        guard outcome == nil else {
            condition.unlock()
            return false
        }
        cancelRequested = true
        let hook = cancelHook
        cancelHook = nil
        condition.unlock()
        hook?()
        return true
    }

    /// Follows a VMDriver job: its progress becomes this job's, a cancel cancels it, and its
    /// value is returned.
    func follow<Value: Sendable>(_ job: Job<Value>) async throws(VMDriverError) -> Value {
        onCancel { job.cancel() }
        let watcher = Task { [weak self] in
            for await update in job.progress {
                if let percent = update.percent { self?.progress = Int(percent) }
                self?.statusText = update.phase
            }
        }
        defer { watcher.cancel() }
        return try await job.wait()
    }
}
