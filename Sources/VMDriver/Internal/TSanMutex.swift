#if VMDRIVER_TSAN
    import Glibc

    /// Synchronization's `Mutex` takes its lock, when contended, in the kernel (FUTEX_LOCK_PI), where
    /// ThreadSanitizer sees no acquire: it then reports the accesses the lock orders as races (seen in
    /// `Job.finish` against `Job.outcome`, both inside `withLock`). The ThreadSanitizer run of
    /// scripts/test.sh builds with `-DVMDRIVER_TSAN`, and this module's `Mutex` is then this one, on a
    /// pthread mutex, which ThreadSanitizer intercepts: races it reports are real. Other builds use
    /// Synchronization's.
    final class Mutex<Value>: @unchecked Sendable {
        private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private var value: Value

        init(_ value: sending Value) {
            self.value = value
            pthread_mutex_init(lock, nil)
        }

        deinit {
            pthread_mutex_destroy(lock)
            lock.deallocate()
        }

        func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
            pthread_mutex_lock(lock)
            defer { pthread_mutex_unlock(lock) }
            return try body(&value)
        }
    }
#endif
