import Foundation
internal import Libvirt
import Synchronization

/// One libvirt migration call on a pool thread, watched from the job's task: progress, the
/// convergence policy's steps, the timeout and cancellation.
extension MigrationPlan {
    struct Attempt {
        var error: VMDriverError?
        var timedOut = false
        var cancelled = false
        /// When the policy paused the guest to finish: it must run again wherever it ends up,
        /// and its downtime runs from here, not from libvirt's switch-over.
        var pausedAt: ContinuousClock.Instant?
        /// Disk bytes copied, as last seen (libvirt's final stats leave them out).
        var diskBytes: UInt64?
    }

    /// One libvirt migration call on a pool thread, watched from this task: progress, the
    /// convergence policy, the timeout and cancellation.
    func transfer(
        flags: Domain.MigrateFlags, context: JobContext, steps: inout [String], started: ContinuousClock.Instant
    ) async throws(VMDriverError) -> Attempt {
        let label = vm.label
        let domain = vm.domain
        let (peerURI, parameters) = (self.peerURI, self.parameters)
        let finished = MigrationDone()
        let wakeup = Wakeup()
        // Each new pass over memory wakes the loop at once: the policy looks at the figures of
        // every pass as it starts, not up to a poll period later. (Progress is still read
        // every 250 ms in between.)
        let passes = try? await vm.host.blocking("", evenIfCancelled: true) { connection in
            try connection.onMigrationIteration(of: domain) { _ in wakeup.fire() }
        }
        defer { passes?.cancel() }
        let migration = Task<VMDriverError?, Never> {
            defer {
                finished.mark()
                wakeup.fire()
            }
            do throws(VMDriverError) {
                try await vm.host.blocking("migration of \(label) to \(destination)", lane: .long) { _ in
                    try domain.migrate(toURI: peerURI, parameters: parameters, flags: flags)
                }
                return nil
            } catch {
                return error
            }
        }
        var attempt = Attempt()
        var policy = ConvergencePolicy(
            enabled: options.policy == .converge && type == .hot, postcopy: flags.contains(.postcopy),
            downtime: options.maxDowntimeMilliseconds ?? 300)
        let deadline = started + timeout
        while !finished.isDone {
            // Not Task.sleep: once the job is cancelled that returns at once, and the loop
            // would spin until libvirt's call returns. The call's end wakes it early.
            await wakeup.wait(upTo: .milliseconds(250))
            if finished.isDone { break }
            if Task.isCancelled && !attempt.cancelled {
                attempt.cancelled = true
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            if ContinuousClock.now > deadline && !attempt.timedOut && !attempt.cancelled {
                attempt.timedOut = true
                steps.append("timeout after \(Job<Void>.format(timeout)): aborted")
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() }
            }
            guard let stats = try? await vm.host.blocking("", evenIfCancelled: true, { _ in try domain.jobStats() }),
                stats.type != .none
            else { continue }
            context.report(Self.progress(stats, type: type))
            if let disk = stats.diskProcessed, disk > 0 { attempt.diskBytes = max(attempt.diskBytes ?? 0, disk) }
            if let action = policy.next(stats) {
                steps.append(action.description)
                if action == .pause { attempt.pausedAt = .now }
                vm.host.logger.info("\(label): \(action.description)")
                try? await vm.host.blocking("", evenIfCancelled: true) { _ in
                    switch action {
                    case .downtime(let milliseconds): try domain.setMigrationMaxDowntime(milliseconds: milliseconds)
                    case .postcopy: try domain.startPostCopy()
                    case .pause: try domain.suspend()
                    case .throttling: break
                    }
                }
            }
        }
        attempt.error = await migration.value
        return attempt
    }

    static func progress(_ stats: Domain.JobStats, type: MigrationOptions.MigrationType) -> JobProgress {
        var progress = JobProgress(
            phase: stats.memoryIteration.map { "\(type.rawValue) migration: memory pass \($0)" } ?? "\(type.rawValue) migration",
            percent: stats.dataTotal.flatMap { total in
                total > 0 ? 100 * Double(total - min(total, stats.dataRemaining ?? 0)) / Double(total) : nil
            },
            bytesProcessed: stats.dataProcessed, bytesRemaining: stats.dataRemaining, bytesTotal: stats.dataTotal)
        progress.memoryRemaining = stats.memoryRemaining
        progress.diskRemaining = stats.diskRemaining
        progress.bytesPerSecond = stats.memoryBytesPerSecond
        progress.dirtyPagesPerSecond = stats.memoryDirtyRate
        progress.iteration = stats.memoryIteration
        progress.expectedDowntimeMilliseconds = stats.downtime
        return progress
    }
}

/// Set when the blocking migration call has returned.
final class MigrationDone: Sendable {
    private let done = Mutex(false)
    func mark() { done.withLock { $0 = true } }
    var isDone: Bool { done.withLock { $0 } }
}
