import Foundation
internal import Libvirt

/// What a preflight predicts about a move, beside its verdict: the guest CPU against the
/// target's, the guest's dirty rate sampled now, and what pre-copy will do at the bandwidth.
public struct MigrationForecast: Sendable, Codable, Equatable {
    public struct CPU: Sendable, Codable, Equatable {
        /// identical, superset (the target's hypervisor offers more), incompatible, or
        /// "not compared" (the note says why).
        public var verdict: String
        /// The features the guest needs that the target lacks (incompatible only).
        public var missingFeatures: [String]
        public var note: String?
    }

    public struct DirtyRate: Sendable, Codable, Equatable {
        public var mibPerSecond: Int64
        /// How long QEMU sampled the guest's pages.
        public var seconds: Int64
    }

    /// Plain pre-copy at a bandwidth: each pass sends what the guest dirtied during the last
    /// one, until what is left fits the allowed downtime.
    public struct Prediction: Sendable, Codable, Equatable {
        public var memoryMiB: UInt64
        public var bandwidthMiBps: UInt64
        public var dirtyMiBps: Int64
        public var downtimeLimitMilliseconds: UInt64
        /// Whether plain pre-copy reaches the switch-over.
        public var converges: Bool
        /// Passes over memory, time to finish and downtime, when it converges.
        public var passes: Int?
        public var seconds: Double?
        public var downtimeMilliseconds: UInt64?
        /// What VMDriver's convergence policy will need ("none" when plain pre-copy converges).
        public var policyStep: String
    }

    public var cpu: CPU?
    public var dirtyRate: DirtyRate?
    public var prediction: Prediction?
    /// For security normal and high: the certificates, and the target's for the address dialled.
    public var tls: TLS?
    /// What could not be forecast, and why.
    public var notes: [String] = []
}

extension MigrationForecast.Prediction {
    /// Pre-copy as a model: pass 1 sends all memory; each later pass sends what the guest
    /// dirtied meanwhile (at most all of it); the switch-over comes when what is left moves
    /// within the allowed downtime. It does not converge when a pass leaves no less than the one
    /// before (the guest dirties as fast as the link sends), or within 30 passes.
    static func model(
        memoryMiB: UInt64, bandwidthMiBps: UInt64, dirtyMiBps: Int64, downtimeLimitMilliseconds: UInt64,
        policy: MigrationOptions.Policy, postcopy: Bool
    ) -> Self {
        let (memory, bandwidth) = (Double(memoryMiB), Double(max(bandwidthMiBps, 1)))
        let dirty = Double(max(dirtyMiBps, 0))
        let limit = Double(downtimeLimitMilliseconds) / 1000
        var remaining = memory
        var seconds = 0.0
        var result = Self(
            memoryMiB: memoryMiB, bandwidthMiBps: bandwidthMiBps, dirtyMiBps: dirtyMiBps,
            downtimeLimitMilliseconds: downtimeLimitMilliseconds, converges: false, policyStep: "")
        for pass in 1...30 {
            let time = remaining / bandwidth
            if time <= limit {
                result.converges = true
                result.passes = pass
                result.seconds = seconds + time
                result.downtimeMilliseconds = UInt64((time * 1000).rounded())
                result.policyStep = "none"
                return result
            }
            seconds += time
            let next = min(memory, dirty * time)
            if pass >= 2 && next >= remaining * 0.95 { break }
            remaining = next
        }
        // Not converging: what is left stays near the memory the guest keeps dirtying.
        let steady = min(memory, dirty * (memory / bandwidth))
        let needed = UInt64((steady / bandwidth * 1000).rounded())
        result.policyStep =
            switch policy {
            case .plain:
                "none: --policy plain takes no step, so the move ends at its timeout (code 3)"
            case .converge where needed <= ConvergencePolicy.downtimeBound:
                "raising the allowed downtime to about \(needed) ms"
            case .converge:
                "auto-converge throttling the guest below \(bandwidthMiBps) MiB/s, then "
                    + (postcopy ? "post-copy" : "pausing the guest for the last pages (a warm finish)")
            }
        return result
    }
}

extension VirtualMachine {
    /// The forecast for a move to the host `plan` connected to: the CPU compared there, and,
    /// for a running VM, a one-second dirty-rate sample and the prediction at the bandwidth
    /// cap. The CPU's verdict is a problem (code 6) when the target cannot give it.
    func forecast(plan: MigrationPlan, options: MigrationOptions) async -> (MigrationForecast, [MigrationCheck.Problem]) {
        var forecast = MigrationForecast()
        var problems: [MigrationCheck.Problem] = []
        let (domain, label) = (self.domain, self.label)
        let facts = try? await host.blocking("") {
            _ -> (cpu: String?, type: String?, arch: String?, machine: String?, active: Bool) in
            let active = try domain.isActive()
            let root = try XMLTree.parse(try domain.xmlDescription(active ? [] : [.inactive]))
            let os = root.child("os")?.child("type")
            return (
                root.child("cpu")?.serialized(), root.attributes["type"], os?.attributes["arch"], os?.attributes["machine"],
                active
            )
        }
        guard let facts else {
            forecast.notes.append("cannot read the definition of \(label)")
            return (forecast, problems)
        }
        // The CPU, against what the target's hypervisor can give a guest of this type.
        if let cpu = facts.cpu {
            let target = plan.destinationHost
            do throws(VMDriverError) {
                let comparison = try await target.blocking("cannot compare the CPU of \(label) on \(target.label)") {
                    connection -> (Connection.CPUComparison, String?) in
                    do {
                        return (
                            try connection.compareHypervisorCPU(
                                xml: cpu, virtType: facts.type, arch: facts.arch, machine: facts.machine, failIncompatible: true),
                            nil
                        )
                    } catch let error as LibvirtError where error.code == .cpuIncompatible {
                        return (.incompatible, error.message)
                    }
                }
                let missing =
                    comparison.1.flatMap { message in
                        message.range(of: "required features: ").map {
                            message[$0.upperBound...].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                        }
                    } ?? []
                forecast.cpu = MigrationForecast.CPU(
                    verdict: "\(comparison.0)", missingFeatures: missing, note: comparison.1)
                if comparison.0 == .incompatible {
                    problems.append(
                        MigrationCheck.Problem(
                            code: .incompatibleParameters,
                            message: "the CPU of \(label) is incompatible with \(target.label)'s "
                                + (missing.isEmpty
                                    ? "(\(comparison.1 ?? "libvirt says so"))"
                                    : "hypervisor: it lacks \(missing.joined(separator: ", "))")))
                }
            } catch {
                forecast.cpu = MigrationForecast.CPU(verdict: "not compared", missingFeatures: [], note: error.message)
            }
        } else {
            forecast.cpu = MigrationForecast.CPU(
                verdict: "not compared", missingFeatures: [], note: "\(label) names no CPU model: the target's default applies")
        }
        guard facts.active else {
            forecast.notes.append("\(label) is not running: no dirty rate to sample, nothing to predict")
            return (forecast, problems)
        }
        // A one-second sample of the guest's dirty rate.
        let rate = try? await host.blocking("") { _ -> Domain.DirtyRate? in
            try domain.startDirtyRateCalc(seconds: 1)
            for _ in 0..<40 {
                Thread.sleep(forTimeInterval: 0.1)
                let rate = try domain.dirtyRate()
                if rate.status == 2 { return rate }
            }
            return nil
        }
        guard let rate = rate ?? nil, let mib = rate.megabytesPerSecond else {
            forecast.notes.append("libvirt gave no dirty-rate sample of \(label) (virDomainStartDirtyRateCalc)")
            return (forecast, problems)
        }
        forecast.dirtyRate = MigrationForecast.DirtyRate(mibPerSecond: mib, seconds: rate.periodSeconds ?? 1)
        guard let bandwidth = options.bandwidthMiBps else {
            forecast.notes.append("no prediction without a bandwidth: give the cap the move will have (--bandwidth MiB/s)")
            return (forecast, problems)
        }
        let memory = (try? await details().memoryMiB) ?? 0
        forecast.prediction = .model(
            memoryMiB: memory, bandwidthMiBps: bandwidth, dirtyMiBps: mib,
            downtimeLimitMilliseconds: options.maxDowntimeMilliseconds ?? 300, policy: options.policy,
            postcopy: options.postcopy)
        return (forecast, problems)
    }
}
