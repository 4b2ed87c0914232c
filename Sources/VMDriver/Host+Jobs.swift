import Foundation
internal import Libvirt

/// One VM's job as `Host.jobs(vm:)` finds it: what libvirt says runs on the domain, and, where
/// VMDriver left its record, which VMDriver operation it is and which process runs it.
public struct HostJob: Sendable, Codable, Equatable {
    /// libvirt's view of a domain's job (virDomainGetJobStats). Sizes in bytes.
    public struct LibvirtJob: Sendable, Codable, Equatable {
        /// bounded (its end is known), unbounded, or none.
        public var type: String
        /// What started it: migration out, migration in, save, snapshot, backup …
        public var operation: Operation?
        public var elapsedMilliseconds: UInt64?
        public var dataProcessed: UInt64?
        public var dataRemaining: UInt64?
        public var dataTotal: UInt64?
        public var memoryTotal: UInt64?
        public var memoryRemaining: UInt64?
        public var diskProcessed: UInt64?
        public var diskRemaining: UInt64?
        public var diskTotal: UInt64?
        public var bytesPerSecond: UInt64?
        /// A migration's pass over the guest's memory (1 for the first) and the pages the
        /// guest dirties per second.
        public var memoryIteration: UInt64?
        public var dirtyPagesPerSecond: UInt64?
    }

    /// `virDomainJobOperation`, by name.
    public enum Operation: String, Sendable, Codable, CaseIterable {
        case unknown
        case start
        case save
        case restore
        case migrationIn = "migration in"
        case migrationOut = "migration out"
        case snapshot
        case snapshotRevert = "snapshot revert"
        case dump
        case backup
        case snapshotDelete = "snapshot delete"

        init(_ operation: Domain.JobOperation) {
            switch operation {
            case .unknown: self = .unknown
            case .start: self = .start
            case .save: self = .save
            case .restore: self = .restore
            case .migrationIn: self = .migrationIn
            case .migrationOut: self = .migrationOut
            case .snapshot: self = .snapshot
            case .snapshotRevert: self = .snapshotRevert
            case .dump: self = .dump
            case .backup: self = .backup
            case .snapshotDelete: self = .snapshotDelete
            }
        }
    }

    public var vm: String
    @LowercaseUUID public var uuid: UUID
    public var state: VMState
    /// nil: libvirt runs no job on the domain.
    public var libvirt: LibvirtJob?
    /// nil: VMDriver left no record on the domain.
    public var record: OperationRecord?
    /// Whether the record's owner still runs (nil without a record).
    public var owner: OperationRecord.OwnerStatus?
    /// The records of clones being made of the VM (or left by a clone whose process died).
    public var clones: [OperationRecord] = []
}

extension Host {
    /// The jobs running on the host: for every VM (or the one named) that has a libvirt job or
    /// a VMDriver record (its own, or a clone's), libvirt's figures and the record. A named VM is listed even when
    /// nothing runs on it.
    /// - Throws: code 4 for a VM that does not exist.
    public func jobs(vm name: String? = nil) async throws(VMDriverError) -> [HostJob] {
        let machines = if let name { [try await open(name)] } else { try await list(all: true) }
        var jobs: [HostJob] = []
        for machine in machines {
            let job = try await blocking("reading the job of \(machine.label)") { [domain = machine.domain] _ in
                // A VM that went away meanwhile (migrated) has no job here any more.
                guard let state = try? VirtualMachine.state(of: domain) else { return HostJob?.none }
                return HostJob(
                    vm: machine.name, uuid: machine.uuid, state: state,
                    libvirt: state.isActive ? (try? domain.jobStats()).flatMap(HostJob.LibvirtJob.init) : nil,
                    record: try? OperationRecords.read(domain), owner: nil,
                    clones: (try? OperationRecords.readClones(domain)) ?? [])
            }
            guard var job else { continue }
            job.owner = job.record?.ownerStatus
            if name != nil || job.libvirt != nil || job.record != nil || !job.clones.isEmpty { jobs.append(job) }
        }
        return jobs
    }
}

extension HostJob.LibvirtJob {
    /// nil for a domain with no job.
    init?(_ stats: Domain.JobStats) {
        guard stats.type == .bounded || stats.type == .unbounded else { return nil }
        self.init(
            type: stats.type == .bounded ? "bounded" : "unbounded", operation: stats.jobOperation.map(HostJob.Operation.init),
            elapsedMilliseconds: stats.timeElapsed, dataProcessed: stats.dataProcessed, dataRemaining: stats.dataRemaining,
            dataTotal: stats.dataTotal, memoryTotal: stats.memoryTotal, memoryRemaining: stats.memoryRemaining,
            diskProcessed: stats.diskProcessed,
            diskRemaining: stats.diskRemaining, diskTotal: stats.diskTotal, bytesPerSecond: stats.memoryBytesPerSecond,
            memoryIteration: stats.memoryIteration, dirtyPagesPerSecond: stats.memoryDirtyRate)
    }
}
