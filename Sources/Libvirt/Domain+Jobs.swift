internal import CLibvirt

extension Domain {
    /// `virDomainJobType`.
    public enum JobType: Int32, Sendable {
        /// VIR_DOMAIN_JOB_NONE
        case none = 0
        /// VIR_DOMAIN_JOB_BOUNDED
        case bounded = 1
        /// VIR_DOMAIN_JOB_UNBOUNDED
        case unbounded = 2
        /// VIR_DOMAIN_JOB_COMPLETED
        case completed = 3
        /// VIR_DOMAIN_JOB_FAILED
        case failed = 4
        /// VIR_DOMAIN_JOB_CANCELLED
        case cancelled = 5
    }

    /// `virDomainJobOperation`: what started a domain's job (the VIR_DOMAIN_JOB_OPERATION field
    /// of `jobStats()`).
    public enum JobOperation: Int32, Sendable, CaseIterable {
        /// VIR_DOMAIN_JOB_OPERATION_UNKNOWN
        case unknown = 0
        /// VIR_DOMAIN_JOB_OPERATION_START
        case start = 1
        /// VIR_DOMAIN_JOB_OPERATION_SAVE
        case save = 2
        /// VIR_DOMAIN_JOB_OPERATION_RESTORE
        case restore = 3
        /// VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN
        case migrationIn = 4
        /// VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
        case migrationOut = 5
        /// VIR_DOMAIN_JOB_OPERATION_SNAPSHOT
        case snapshot = 6
        /// VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT
        case snapshotRevert = 7
        /// VIR_DOMAIN_JOB_OPERATION_DUMP
        case dump = 8
        /// VIR_DOMAIN_JOB_OPERATION_BACKUP
        case backup = 9
        /// VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_DELETE
        case snapshotDelete = 10
    }

    /// `virDomainGetJobStatsFlags`.
    public struct JobStatsFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_JOB_STATS_COMPLETED: the stats of the last completed job.
        public static let completed = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
        public static let keepCompleted = Self(rawValue: 1 << 1)
    }

    /// Statistics of the domain's current (or last completed) job: migration, save, dump, backup …
    /// Fields libvirt did not report are nil. Times in milliseconds, sizes in bytes.
    public struct JobStats: TypedParameterRecord {
        public var type: JobType = .none
        /// VIR_DOMAIN_JOB_OPERATION (a `virDomainJobOperation` value)
        public var operation: Int32?
        /// VIR_DOMAIN_JOB_TIME_ELAPSED
        public var timeElapsed: UInt64?
        /// VIR_DOMAIN_JOB_TIME_ELAPSED_NET
        public var timeElapsedNet: UInt64?
        /// VIR_DOMAIN_JOB_TIME_REMAINING
        public var timeRemaining: UInt64?
        /// VIR_DOMAIN_JOB_DOWNTIME: expected (running) or measured (completed) downtime.
        public var downtime: UInt64?
        /// VIR_DOMAIN_JOB_DOWNTIME_NET
        public var downtimeNet: UInt64?
        /// VIR_DOMAIN_JOB_SETUP_TIME
        public var setupTime: UInt64?
        /// VIR_DOMAIN_JOB_DATA_TOTAL
        public var dataTotal: UInt64?
        /// VIR_DOMAIN_JOB_DATA_PROCESSED
        public var dataProcessed: UInt64?
        /// VIR_DOMAIN_JOB_DATA_REMAINING
        public var dataRemaining: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_TOTAL
        public var memoryTotal: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_PROCESSED
        public var memoryProcessed: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_REMAINING
        public var memoryRemaining: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_CONSTANT
        public var memoryConstant: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_NORMAL
        public var memoryNormal: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_NORMAL_BYTES
        public var memoryNormalBytes: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_BPS
        public var memoryBytesPerSecond: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE (pages per second)
        public var memoryDirtyRate: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE
        public var memoryPageSize: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_ITERATION
        public var memoryIteration: UInt64?
        /// VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS
        public var memoryPostcopyRequests: UInt64?
        /// VIR_DOMAIN_JOB_DISK_TOTAL
        public var diskTotal: UInt64?
        /// VIR_DOMAIN_JOB_DISK_PROCESSED
        public var diskProcessed: UInt64?
        /// VIR_DOMAIN_JOB_DISK_REMAINING
        public var diskRemaining: UInt64?
        /// VIR_DOMAIN_JOB_DISK_BPS
        public var diskBytesPerSecond: UInt64?
        /// VIR_DOMAIN_JOB_COMPRESSION_CACHE
        public var compressionCache: UInt64?
        /// VIR_DOMAIN_JOB_COMPRESSION_BYTES
        public var compressionBytes: UInt64?
        /// VIR_DOMAIN_JOB_COMPRESSION_PAGES
        public var compressionPages: UInt64?
        /// VIR_DOMAIN_JOB_COMPRESSION_CACHE_MISSES
        public var compressionCacheMisses: UInt64?
        /// VIR_DOMAIN_JOB_COMPRESSION_OVERFLOW
        public var compressionOverflow: UInt64?
        /// VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE (percent)
        public var autoConvergeThrottle: Int32?
        /// VIR_DOMAIN_JOB_SUCCESS
        public var success: Bool?
        /// VIR_DOMAIN_JOB_ERRMSG
        public var errorMessage: String?

        public init() {}

        /// `operation` by name; nil when libvirt did not say or named one newer than this wrapper.
        public var jobOperation: JobOperation? { operation.flatMap(JobOperation.init(rawValue:)) }

        public static var fields: [TypedParameterField<JobStats>] {
            [
                .int("operation", \.operation),
                .ullong("time_elapsed", \.timeElapsed),
                .ullong("time_elapsed_net", \.timeElapsedNet),
                .ullong("time_remaining", \.timeRemaining),
                .ullong("downtime", \.downtime),
                .ullong("downtime_net", \.downtimeNet),
                .ullong("setup_time", \.setupTime),
                .ullong("data_total", \.dataTotal),
                .ullong("data_processed", \.dataProcessed),
                .ullong("data_remaining", \.dataRemaining),
                .ullong("memory_total", \.memoryTotal),
                .ullong("memory_processed", \.memoryProcessed),
                .ullong("memory_remaining", \.memoryRemaining),
                .ullong("memory_constant", \.memoryConstant),
                .ullong("memory_normal", \.memoryNormal),
                .ullong("memory_normal_bytes", \.memoryNormalBytes),
                .ullong("memory_bps", \.memoryBytesPerSecond),
                .ullong("memory_dirty_rate", \.memoryDirtyRate),
                .ullong("memory_page_size", \.memoryPageSize),
                .ullong("memory_iteration", \.memoryIteration),
                .ullong("memory_postcopy_requests", \.memoryPostcopyRequests),
                .ullong("disk_total", \.diskTotal),
                .ullong("disk_processed", \.diskProcessed),
                .ullong("disk_remaining", \.diskRemaining),
                .ullong("disk_bps", \.diskBytesPerSecond),
                .ullong("compression_cache", \.compressionCache),
                .ullong("compression_bytes", \.compressionBytes),
                .ullong("compression_pages", \.compressionPages),
                .ullong("compression_cache_misses", \.compressionCacheMisses),
                .ullong("compression_overflow", \.compressionOverflow),
                .int("auto_converge_throttle", \.autoConvergeThrottle),
                .boolean("success", \.success),
                .string("errmsg", \.errorMessage),
            ]
        }
    }

    /// Statistics of the current job, or of the last completed one with `.completed`.
    /// Calls `virDomainGetJobStats`.
    public func jobStats(_ flags: JobStatsFlags = []) throws(LibvirtError) -> JobStats {
        var type: Int32 = 0
        var parameters: virTypedParameterPtr? = nil
        var count: Int32 = 0
        try call("virDomainGetJobStats") {
            virDomainGetJobStats(pointer, &type, &parameters, &count, flags.rawValue)
        }
        defer { virTypedParamsFree(parameters, count) }
        var stats = JobStats(typedParameters: TypedParameterList.decode(parameters, count: count))
        stats.type = JobType(rawValue: type) ?? .none
        return stats
    }

    /// Aborts the domain's current job (a migration, save …). Calls `virDomainAbortJob`.
    public func abortJob() throws(LibvirtError) {
        try call("virDomainAbortJob") { virDomainAbortJob(pointer) }
    }
}
