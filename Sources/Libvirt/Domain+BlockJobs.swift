internal import CLibvirt

extension Domain {
    /// `virDomainBlockCommitFlags`.
    public struct BlockCommitFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_BLOCK_COMMIT_SHALLOW: commit only the top image into its backing file.
        public static let shallow = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_BLOCK_COMMIT_DELETE: delete the committed files afterwards.
        public static let delete = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_BLOCK_COMMIT_ACTIVE: commit the active layer (needs a pivot to finish).
        public static let active = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_BLOCK_COMMIT_RELATIVE
        public static let relative = Self(rawValue: 1 << 3)
    }

    /// `virDomainBlockJobAbortFlags`.
    public struct BlockJobAbortFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC
        public static let async = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT: finish a copy or active commit by switching to its result.
        public static let pivot = Self(rawValue: 1 << 1)
    }

    /// `virDomainBlockRebaseFlags`.
    public struct BlockRebaseFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// VIR_DOMAIN_BLOCK_REBASE_SHALLOW
        public static let shallow = Self(rawValue: 1 << 0)
        /// VIR_DOMAIN_BLOCK_REBASE_REUSE_EXT
        public static let reuseExternal = Self(rawValue: 1 << 1)
        /// VIR_DOMAIN_BLOCK_REBASE_COPY_RAW
        public static let copyRaw = Self(rawValue: 1 << 2)
        /// VIR_DOMAIN_BLOCK_REBASE_COPY
        public static let copy = Self(rawValue: 1 << 3)
    }

    /// Progress of a block job: `current` of `end` units done.
    public struct BlockJobInfo: Sendable, Hashable {
        public let type: Int32
        public let current: UInt64
        public let end: UInt64
        /// The job has copied everything and waits for a pivot (active commit, copy).
        public var isReady: Bool { end > 0 && current == end }
    }

    /// Merges images of a running domain's disk: `top` (nil: the active image with `.active`)
    /// down into `base` (nil: the bottom). Starts a block job. Calls `virDomainBlockCommit`.
    public func blockCommit(
        disk: String, base: String? = nil, top: String? = nil, flags: BlockCommitFlags = []
    ) throws(LibvirtError) {
        try call("virDomainBlockCommit") { virDomainBlockCommit(pointer, disk, base, top, 0, flags.rawValue) }
    }

    /// A disk's virtual size, allocation and size on its host in bytes. Calls
    /// `virDomainGetBlockInfo`.
    public func blockInfo(disk: String) throws(LibvirtError) -> (capacity: UInt64, allocation: UInt64, physical: UInt64) {
        var info = virDomainBlockInfo()
        try call("virDomainGetBlockInfo") { virDomainGetBlockInfo(pointer, disk, &info, 0) }
        return (UInt64(info.capacity), UInt64(info.allocation), UInt64(info.physical))
    }

    /// Pulls the backing chain's data into the active image of a running domain's disk, so it
    /// stands alone. Starts a block job. Calls `virDomainBlockPull`.
    public func blockPull(disk: String) throws(LibvirtError) {
        try call("virDomainBlockPull") { virDomainBlockPull(pointer, disk, 0, 0) }
    }

    /// The disk's current block job, or nil when none runs. Calls `virDomainGetBlockJobInfo`.
    public func blockJobInfo(disk: String) throws(LibvirtError) -> BlockJobInfo? {
        var info = virDomainBlockJobInfo()
        let found = try call("virDomainGetBlockJobInfo") { virDomainGetBlockJobInfo(pointer, disk, &info, 0) }
        guard found == 1 else { return nil }
        return BlockJobInfo(type: info.type, current: UInt64(info.cur), end: UInt64(info.end))
    }

    /// Ends a block job: cancels it, or with `.pivot` switches the disk to the job's result.
    /// Calls `virDomainBlockJobAbort`.
    public func blockJobAbort(disk: String, flags: BlockJobAbortFlags = []) throws(LibvirtError) {
        try call("virDomainBlockJobAbort") { virDomainBlockJobAbort(pointer, disk, flags.rawValue) }
    }
}
