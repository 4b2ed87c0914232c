import Foundation
import Synchronization

/// A small pool of dedicated threads for libvirt's blocking calls, which may block for minutes
/// (a migration) and so must never run on Swift's cooperative pool. Threads are started on
/// demand up to `maximumThreads` and then reused; work queued beyond that waits its turn.
/// A task cancelled before its work starts gets `CancellationError` and the work never runs.
final class BlockingPool: @unchecked Sendable {
    // All mutable state is guarded by `condition`'s lock.
    static let shared = BlockingPool(maximumThreads: 16)

    private final class Item: Sendable {
        let cancelled = Atomic(false)
        let work: @Sendable (_ cancelled: Bool) -> Void
        init(_ work: @escaping @Sendable (Bool) -> Void) { self.work = work }
    }

    private let condition = NSCondition()
    private var queue: [Item] = []
    private var threads = 0
    private var idle = 0
    private let maximumThreads: Int

    init(maximumThreads: Int) { self.maximumThreads = maximumThreads }

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
        let spawn = idle == 0 && threads < maximumThreads
        if spawn { threads += 1 }
        condition.signal()
        condition.unlock()
        if spawn {
            let thread = Thread { [self] in worker() }
            thread.name = "vmdriver-blocking"
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
