import Foundation
internal import Libvirt
import Synchronization

/// What a finished migration reports: the guest's downtime and the bytes moved.
extension MigrationPlan {
    /// The guest's downtime: libvirt's measure of the switch-over, or, when the policy paused
    /// the guest to finish, the whole pause (until it was resumed on the target).
    static func downtime(libvirt: UInt64?, pausedFor: Duration?) -> UInt64? {
        guard let pausedFor else { return libvirt }
        let paused =
            UInt64(max(0, pausedFor.components.seconds)) * 1000 + UInt64(pausedFor.components.attoseconds / 1_000_000_000_000_000)
        return max(libvirt ?? 0, paused)
    }

    /// Bytes moved: memory plus disks, each once. libvirt's completed stats may leave the NBD
    /// disk copy out of their total (92 MiB was reported for a copied-storage migration): the
    /// memory libvirt reports plus the disk bytes (the larger of the final figure and the
    /// largest seen while it ran); the total only when there is no memory figure.
    static func bytes(_ stats: Domain.JobStats?, diskSeen: UInt64?) -> UInt64? {
        let disk = max(stats?.diskProcessed ?? 0, diskSeen ?? 0)
        if let memory = stats?.memoryProcessed { return memory + disk }
        guard let total = stats?.dataProcessed else { return diskSeen }
        return max(total, disk)
    }
}
