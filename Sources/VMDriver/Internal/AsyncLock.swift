/// Serialises async work per key (per source VM: two clones must not both freeze its disks at
/// once). Waiters are served in arrival order.
actor KeyedLock<Key: Hashable & Sendable> {
    private var holders: [Key: [CheckedContinuation<Void, Never>]] = [:]

    func withLock<T: Sendable>(_ key: Key, _ body: @Sendable () async throws(VMDriverError) -> T) async throws(VMDriverError) -> T
    {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: Key) async {
        if holders[key] == nil {
            holders[key] = []
            return
        }
        await withCheckedContinuation { holders[key, default: []].append($0) }
    }

    private func release(_ key: Key) {
        guard var waiting = holders[key] else { return }
        if waiting.isEmpty {
            holders[key] = nil
        } else {
            let next = waiting.removeFirst()
            holders[key] = waiting
            next.resume()
        }
    }
}
