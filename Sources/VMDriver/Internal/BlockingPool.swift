import Foundation
import Synchronization

/// Dedicated threads for libvirt's blocking calls, which may block for minutes (a migration)
/// and so must never run on Swift's cooperative pool. Two lanes, so a call that controls a
/// long one (job stats, abort, a state check) never queues behind it:
/// - `control`: quick calls; threads start on demand up to a bound and are reused.
/// - `long`: calls that may block for minutes (a migration, a disk copy, a block job); every
///   call gets a thread at once (an idle one, or a new one), so none waits for another to end.
///
/// A task cancelled before its work starts gets `CancellationError` and the work never runs.
final class BlockingPool: @unchecked Sendable {
    // All mutable state is guarded by `condition`'s lock.

    /// Which pool a call belongs in.
    enum Lane: Sendable {
        case control
        case long

        var pool: BlockingPool {
            switch self {
            case .control: BlockingPool.control
            case .long: BlockingPool.long
            }
        }
    }

    static let control = BlockingPool(name: "vmdriver-control", maximumThreads: 16)
    static let long = BlockingPool(name: "vmdriver-long", maximumThreads: nil)

    private final class Item: Sendable {
        let cancelled = Atomic(false)
        let work: @Sendable (_ cancelled: Bool) -> Void
        init(_ work: @escaping @Sendable (Bool) -> Void) { self.work = work }
    }

    private let condition = NSCondition()
    private var queue: [Item] = []
    private var threads = 0
    /// Threads waiting for work. An item queued while every idle thread already has an item
    /// waiting for it gets a new thread (where the bound allows).
    private var idle = 0
    private let maximumThreads: Int?
    private let name: String

    /// - Parameter maximumThreads: nil for no bound (a thread for every call that finds none idle).
    init(name: String, maximumThreads: Int?) {
        self.name = name
        self.maximumThreads = maximumThreads
    }

    /// Threads started so far (for tests).
    var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }

    /// Runs `body` on a pool thread and returns its result.
    /// - Parameter honoringCancellation: false for clean-up work (a rollback, merging a frozen
    ///   disk back) that must run even when the task that asks for it was cancelled.
    func run<T: Sendable>(honoringCancellation: Bool = true, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard honoringCancellation else {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                enqueue(Item { _ in continuation.resume(with: Result { try body() }) })
            }
        }
        let box = Mutex<Item?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let item = Item { cancelled in
                    if cancelled {
                        continuation.resume(throwing: CancellationError())
                        return
                    }
                    continuation.resume(with: Result { try body() })
                }
                box.withLock { $0 = item }
                if Task.isCancelled { item.cancelled.store(true, ordering: .releasing) }
                enqueue(item)
            }
        } onCancel: {
            box.withLock { $0?.cancelled.store(true, ordering: .releasing) }
        }
    }

    private func enqueue(_ item: Item) {
        condition.lock()
        queue.append(item)
        // Counted before any worker wakes: two items queued at once with one idle thread get
        // a second thread, rather than the second waiting for the first to finish.
        let spawn = queue.count > idle && (maximumThreads.map { threads < $0 } ?? true)
        if spawn { threads += 1 }
        condition.signal()
        condition.unlock()
        if spawn {
            let thread = Thread { [self] in worker() }
            thread.name = name
            thread.start()
        }
    }

    private func worker() {
        while true {
            condition.lock()
            idle += 1
            while queue.isEmpty { condition.wait() }
            idle -= 1
            let item = queue.removeFirst()
            condition.unlock()
            item.work(item.cancelled.load(ordering: .acquiring))
        }
    }
}
