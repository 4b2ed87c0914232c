import Foundation

/// How to migrate: the Parallels PVMT_*/PVMSL_* flags and CIM's MigrationSettingData, in
/// Swift's shape.
public struct MigrationOptions: Sendable, Equatable {
    /// PVMT_* / CIM MigrationType.
    public enum MigrationType: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        /// Hot if the VM runs (or is paused), cold if it is shut off; warm instead of hot for a
        /// TCG guest on a QEMU that loses its writes in a live move (`Capabilities.Feature.tcgLive`).
        case auto
        /// Live (CIM Live): the guest keeps running while its memory moves.
        case hot
        /// The guest is paused during the transfer and resumed on the target (CIM Resume).
        case warm
        /// The guest is shut down, moved, and started again on the target if it was running
        /// (CIM Restart).
        case cold

        /// The types a migration runs as (`auto` resolves to one of them).
        public static let concrete: [MigrationType] = [.hot, .warm, .cold]
    }

    /// PVMSL_*.
    public enum Security: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        /// Plain TCP for control and data.
        case low
        /// An authenticated, encrypted control connection (TLS); data as the host provides.
        case normal
        /// Every byte encrypted: TLS control and QEMU native TLS for the data, the target's
        /// certificate checked against its name or address.
        case high
    }

    /// How disks travel.
    public enum Storage: String, Sendable, Codable, CaseIterable {
        /// Shared disks stay in place (sharing is verified, not guessed); others are copied.
        case auto
        /// The disks are on storage both hosts see: nothing is copied.
        case shared
        /// Every disk is copied to the target.
        case copy
        /// Only each disk's top image is copied, over the target's identical base: a base the
        /// target lacks is copied there first, to the same path, and stays (a base it holds with
        /// other bytes is code 6).
        case incremental
    }

    /// What to do when a live migration does not converge.
    public enum Policy: String, Sendable, Codable, CaseIterable {
        /// Leave it to libvirt's settings.
        case plain
        /// Step the allowed downtime up, let auto-converge throttle, then switch to post-copy
        /// where available; give up with code 3 at the timeout.
        case converge
    }

    public var type: MigrationType = .auto
    public var security: Security = .low
    public var storage: Storage = .auto
    public var policy: Policy = .converge
    /// Keep the VM defined on the source (the vendors' clone mode / keep-src).
    public var keepSource = false
    /// Cold: destroy the VM if it has not shut down by `shutdownTimeout`.
    public var force = false
    public var shutdownTimeout: Duration = .seconds(60)
    /// New settings on the target (CIM NewSystemSettingData / NewResourceSettingData).
    public var newName: String?
    public var memoryMiB: UInt64?
    public var vcpus: UInt32?
    /// A folder on the target for the VM's copied disks (Parallels' target_home_path); made if
    /// missing. Implies copying the disks there.
    public var home: String?
    /// Tuning.
    public var bandwidthMiBps: UInt64?
    public var maxDowntimeMilliseconds: UInt64?
    public var parallelConnections: Int?
    public var compress = false
    public var autoConverge = false
    public var postcopy = false
    /// Give up (code 3) after this long; nil scales with the VM's memory.
    public var timeout: Duration?
    /// Directory with cacert.pem, clientcert.pem and clientkey.pem for VMDriver's own TLS
    /// connection to the target (libvirt's `pkipath`); the source host uses its own.
    public var clientPKIPath: String?

    public init() {}
}

/// What a finished migration reports.
public struct MigrationResult: Sendable, Codable, Equatable {
    public var vm: String
    public var source: String
    public var destination: String
    public var type: MigrationOptions.MigrationType
    public var storage: MigrationOptions.Storage
    public var security: MigrationOptions.Security
    /// Wall time of the whole job, in seconds.
    public var seconds: Double
    /// Of `seconds`, the time inside libvirt's migration call (both calls when a refused
    /// post-copy is retried without it); the rest is VMDriver's own: its checks before, the
    /// copies a cold move or a chain makes, the clean-up after. Nil when nothing was called.
    public var migrationCallSeconds: Double? = nil
    /// The guest's measured downtime at the switch-over, when libvirt reports it.
    public var downtimeMilliseconds: UInt64?
    /// Bytes moved: memory, plus the disks' bytes as QEMU's disk mirror counts them (every
    /// byte of the virtual disk it went through, so a sparse disk counts its holes, which are
    /// not sent: a 2 GiB disk with 1 GiB of data counts 2 GiB and puts ~1 GiB on the wire).
    public var bytesTransferred: UInt64?
    /// Of which disk bytes, counted the same way.
    public var diskBytesTransferred: UInt64?
    /// The VM's state on the destination.
    public var state: VMState
    /// What the convergence policy did, in order.
    public var steps: [String]
    /// How each disk travelled and where it is now.
    public var disks: [Disk]

    public struct Disk: Sendable, Codable, Equatable {
        /// The guest's device name (vda).
        public var device: String
        /// shared, copy or incremental.
        public var mode: String
        public var sourcePath: String
        public var targetPath: String
    }
}
