import Dispatch
import Foundation
import Synchronization
import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

/// Ctrl-C (SIGINT) and SIGTERM for the long commands, as `virsh migrate` has them: the first
/// signal cancels the running job, which aborts the libvirt job and rolls back what VMDriver
/// made; vmctl then exits with the job's code (2) and says where the VM is. A second signal
/// within a few seconds stops waiting for the rollback and exits at once, saying what may be left.
///
/// A signal that arrives before the job exists (while vmctl connects or prepares the target)
/// is kept and cancels the job as soon as it starts. Short commands keep the default: the
/// signal ends vmctl at once.
final class Interrupts: Sendable {
    static let shared = Interrupts()

    private struct State {
        var armed = false
        var cancel: (@Sendable () -> Void)?
        var what = ""
        var first: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// How long after the first signal a second one stops vmctl waiting for the rollback.
    static let secondSignalWindow: Duration = .seconds(5)

    /// From now on SIGINT and SIGTERM cancel the job `follow` registers instead of ending vmctl.
    func arm() {
        let installed = state.withLock { state in
            defer { state.armed = true }
            return state.armed
        }
        guard !installed else { return }
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in received(number) }
            source.resume()
            signalSources.append(source)
        }
    }

    /// Registers the running job: a signal from now on cancels it (at once, if one came already).
    func register<T: Sendable>(_ job: Job<T>) {
        let cancelNow = state.withLock { state in
            state.cancel = { job.cancel() }
            // "migration of VM 'web' …", "clone 'c' of VM 'web' …" name their operation; a
            // shutdown's subject is the VM alone.
            state.what = job.subject.hasPrefix("VM ") ? "\(job.kind.rawValue) of \(job.subject)" : job.subject
            return state.first != nil
        }
        if cancelNow { cancelJob() }
    }

    /// The job has ended.
    func unregister() { state.withLock { $0.cancel = nil } }

    private func received(_ number: Int32) {
        let now = ContinuousClock.now
        let (repeated, hasJob) = state.withLock { state -> (Bool, Bool) in
            if let first = state.first {
                return (now - first < Self.secondSignalWindow, state.cancel != nil)
            }
            state.first = now
            return (false, state.cancel != nil)
        }
        let name = number == SIGINT ? "interrupted" : "terminated"
        if repeated {
            let what = state.withLock { $0.what }
            Self.say(
                "\(name) again: not waiting for the rollback of the \(what.isEmpty ? "operation" : what); "
                    + "what VMDriver made may be left: `vmctl jobs` and `vmctl abort VM` show and end it")
            exit(Int32(ReturnCode.failed.exitStatus))
        }
        guard hasJob else {
            Self.say("\(name): cancelling as soon as the operation has started (again within 5 s to stop at once)")
            return
        }
        cancelJob()
    }

    private func cancelJob() {
        let (cancel, what) = state.withLock { ($0.cancel, $0.what) }
        guard let cancel else { return }
        Self.say("cancelling the \(what): rolling back (again within 5 s to stop waiting)")
        cancel()
    }

    private static func say(_ text: String) {
        FileHandle.standardError.write(Data("\nvmctl: \(text)\n".utf8))
    }
}

/// Kept for the life of the process. Written only by the one `arm()` call that installs them
/// (the `armed` flag is set under the lock first), never read.
nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []
