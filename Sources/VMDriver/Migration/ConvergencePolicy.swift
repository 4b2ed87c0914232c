import Foundation
internal import Libvirt
import Synchronization

/// The steps VMDriver takes when a live migration does not converge: the data left at the
/// start of a pass not falling below the best seen so far. Each stalled pass raises the
/// allowed downtime towards what the remaining data would need at the measured bandwidth
/// (bounded); auto-converge (on from the start) throttles the guest, which is reported when
/// QEMU starts doing it; once the downtime is at its bound and the migration still stalls, it
/// switches to post-copy where allowed, and otherwise pauses the guest so the last pages can
/// move (as Nova's force-complete and virsh's --timeout-suspend do); it resumes on the target.
struct ConvergencePolicy {
    enum Action: CustomStringConvertible, Equatable {
        case downtime(UInt64)
        case throttling(Int32)
        case postcopy
        case pause
        var description: String {
            switch self {
            case .downtime(let ms): "not converging: allowed downtime raised to \(ms) ms"
            case .throttling(let percent): "auto-converge is throttling the guest's vCPUs (\(percent)%)"
            case .postcopy: "still not converging: switched to post-copy"
            case .pause: "still not converging: paused the guest to move the last pages (it resumes on the target)"
            }
        }
    }

    static let downtimeBound: UInt64 = 2000

    let enabled: Bool
    let postcopy: Bool
    private(set) var downtime: UInt64
    private var lastIteration: UInt64 = 0
    private var bestRemaining: UInt64 = .max
    private var stalledAtBound = 0
    private var throttleSeen = false
    private var switched = false

    init(enabled: Bool, postcopy: Bool, downtime: UInt64 = 300) {
        self.enabled = enabled
        self.postcopy = postcopy
        self.downtime = downtime
    }

    /// Looks at one sample of the job's stats; returns the next step, if one is due.
    mutating func next(_ stats: Domain.JobStats) -> Action? {
        guard enabled, !switched else { return nil }
        if !throttleSeen, let throttle = stats.autoConvergeThrottle, throttle > 0 {
            throttleSeen = true
            return .throttling(throttle)
        }
        guard let iteration = stats.memoryIteration, let remaining = stats.memoryRemaining, iteration > lastIteration
        else { return nil }
        lastIteration = iteration
        guard iteration >= 2 else { return nil }
        if remaining + remaining / 10 < bestRemaining {
            bestRemaining = min(bestRemaining, remaining)
            return nil
        }
        if downtime < Self.downtimeBound {
            // What the data left would take at the measured bandwidth, at least twice the last.
            let needed = stats.memoryBytesPerSecond.map { $0 > 0 ? remaining * 1000 / $0 : 0 } ?? 0
            downtime = min(Self.downtimeBound, max(downtime * 2, needed))
            return .downtime(downtime)
        }
        stalledAtBound += 1
        guard stalledAtBound >= 2 else { return nil }
        switched = true
        return postcopy ? .postcopy : .pause
    }
}
