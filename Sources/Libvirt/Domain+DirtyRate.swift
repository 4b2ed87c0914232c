internal import CLibvirt
import Foundation

extension Domain {
    /// A measurement of how fast the guest dirties its memory.
    public struct DirtyRate: Sendable, Equatable {
        /// libvirt's virDomainDirtyRateStatus: 0 not started, 1 measuring, 2 measured.
        public var status: Int32
        /// MiB the guest dirtied per second over the period, once measured.
        public var megabytesPerSecond: Int64?
        public var periodSeconds: Int64?
    }

    /// Starts measuring the guest's dirty rate over `seconds` (QEMU's calc-dirty-rate, page
    /// sampling). Calls `virDomainStartDirtyRateCalc`.
    public func startDirtyRateCalc(seconds: Int32) throws(LibvirtError) {
        try call("virDomainStartDirtyRateCalc") { virDomainStartDirtyRateCalc(pointer, seconds, 0) }
    }

    /// The last dirty-rate measurement.
    /// Calls `virDomainListGetStats` with the dirty-rate group (VIR_DOMAIN_STATS_DIRTYRATE).
    public func dirtyRate() throws(LibvirtError) -> DirtyRate {
        var domains: [virDomainPtr?] = [pointer, nil]
        var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>? = nil
        let count = try call("virDomainListGetStats") {
            virDomainListGetStats(&domains, UInt32(VIR_DOMAIN_STATS_DIRTYRATE.rawValue), &records, 0)
        }
        defer { if let records { virDomainStatsRecordListFree(records) } }
        var rate = DirtyRate(status: 0)
        guard count > 0, let record = records?[0]?.pointee else { return rate }
        for (key, value) in TypedParameterList.decode(record.params, count: record.nparams) {
            switch (key, value) {
            case ("dirtyrate.calc_status", .int(let status)): rate.status = status
            case ("dirtyrate.megabytes_per_second", .llong(let mib)): rate.megabytesPerSecond = mib
            case ("dirtyrate.calc_period", .llong(let seconds)): rate.periodSeconds = seconds
            default: break
            }
        }
        return rate
    }
}

extension Connection {
    /// How a hypervisor's CPU compares with a guest CPU: `virCPUCompareResult`.
    public enum CPUComparison: Int32, Sendable {
        /// VIR_CPU_COMPARE_INCOMPATIBLE
        case incompatible = 0
        /// VIR_CPU_COMPARE_IDENTICAL
        case identical = 1
        /// VIR_CPU_COMPARE_SUPERSET
        case superset = 2
    }

    /// Compares the CPU this host's hypervisor can give a guest of `virtType` (kvm, qemu) with
    /// the guest CPU `xml` (a `<cpu>` element). With `failIncompatible`, an incompatible CPU is
    /// an error whose message names the missing features. Calls
    /// `virConnectCompareHypervisorCPU`.
    public func compareHypervisorCPU(
        xml: String, virtType: String?, arch: String? = nil, machine: String? = nil, failIncompatible: Bool = false
    ) throws(LibvirtError) -> CPUComparison {
        let flags = failIncompatible ? UInt32(VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE.rawValue) : 0
        let result = try call("virConnectCompareHypervisorCPU") {
            virConnectCompareHypervisorCPU(pointer, nil, arch, machine, virtType, xml, flags)
        }
        return CPUComparison(rawValue: result) ?? .incompatible
    }
}
