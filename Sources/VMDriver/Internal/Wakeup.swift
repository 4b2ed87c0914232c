import Synchronization

/// Lets a polling loop sleep until either an event arrives (`fire()`, from libvirt's event
/// thread) or a period passes, whichever is first. Events that arrive while nobody waits are
/// remembered, so none is lost between two waits; a period that ends before the waiter has
/// registered is remembered too, so a wait always ends.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: (generation: Int, continuation: CheckedContinuation<Void, Never>)?
        /// The wait whose period ended before it registered its continuation.
        var expired: Int?
        var generation = 0
    }
    private let state = Mutex(State())

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Returns after `fire()` or after `period`.
    func wait(upTo period: Duration) async {
        let generation = state.withLock { state -> Int? in
            if state.pending {
                state.pending = false
                return nil
            }
            state.generation += 1
            return state.generation
        }
        guard let generation else { return }
        let timer = Task { [self] in
            try? await Task.sleep(for: period)
            if !Task.isCancelled { expire(generation) }
        }
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.expired == generation {
                    state.expired = nil
                    return true
                }
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = (generation, continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
        timer.cancel()
    }

    /// The period of wait `generation` is over: wake it, or, if it has not registered yet, leave a
    /// note it finds when it does.
    private func expire(_ generation: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter, waiter.generation == generation else {
                if state.generation == generation { state.expired = generation }
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }
}
