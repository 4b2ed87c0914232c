internal import Libvirt
import Synchronization

/// One disk's block job followed by libvirt's BLOCK_JOB_2 events, so its end is known at once
/// and completion is told from failure (libvirt's job info only says a job is gone). Made
/// before the job starts, so its end cannot be missed.
final class BlockJobWatch: Sendable {
    /// How a job ended, as far as VMDriver can tell.
    enum Outcome: Sendable, Equatable {
        case completed
        case failed
        case cancelled
        /// Copied everything; waits for a pivot (an active commit, a copy).
        case ready
        /// Gone without an event (a lost connection, say): the caller checks the result itself.
        case vanished
        /// Still running at the deadline.
        case timedOut
    }

    /// What the events said last, shared with libvirt's event thread.
    private final class Latest: Sendable {
        let status = Mutex<BlockJobEvent.Status?>(nil)
        let wakeup = Wakeup()
    }

    let disk: String
    private let latest = Latest()
    private let registration: EventRegistration

    /// Registers for the events of `disk`. Blocking: call on the pool.
    init(domain: Domain, disk: String, connection: Connection) throws(LibvirtError) {
        self.disk = disk
        let latest = self.latest
        registration = try connection.onBlockJobEvent(of: domain) { event in
            guard event.disk == disk else { return }
            latest.status.withLock { $0 = event.status }
            latest.wakeup.fire()
        }
    }

    private var status: BlockJobEvent.Status? { latest.status.withLock { $0 } }

    deinit { registration.cancel() }

    /// Waits until the job has ended (or, with `untilReady`, is ready to pivot), or the
    /// deadline passes. Between events it looks at the job's info once a second (through the
    /// control lane), so a job that ended without an event is noticed too.
    func wait(
        domain: Domain, host: Host, untilReady: Bool = false, deadline: ContinuousClock.Instant
    ) async -> Outcome {
        while true {
            switch status {
            case .completed: return .completed
            case .failed: return .failed
            case .cancelled: return .cancelled
            case .ready where untilReady: return .ready
            case .ready, nil: break
            }
            if ContinuousClock.now >= deadline { return .timedOut }
            await latest.wakeup.wait(upTo: min(.seconds(1), deadline - ContinuousClock.now))
            // An event came: look at it first. Otherwise (nothing yet, or ready while waiting for
            // the end) the job's info tells whether it is still there.
            guard status == nil || status == .ready else { continue }
            let before = status
            let running = try? await host.blocking("", evenIfCancelled: true) { [disk] _ in
                try domain.blockJobInfo(disk: disk) != nil
            }
            // The job is gone and no event said how: give a late event a moment, then say so.
            if running == false {
                await latest.wakeup.wait(upTo: .milliseconds(500))
                if status == before { return .vanished }
            }
        }
    }
}
