import Foundation
internal import Libvirt

/// What a clone has made so far, for rollback. Shared with pool threads, so locked.
final class CreatedFiles: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var files: [String] = []
    private var domain: Domain?

    private var overlays: [String] = []
    private var merge = false

    func add(_ path: String) { lock.withLock { files.append(path) } }
    /// A new top image the freeze gave the source (the source's, not the clone's).
    func addFreezeOverlay(_ path: String) { lock.withLock { overlays.append(path) } }
    func freezeOverlays() -> [String] { lock.withLock { overlays } }
    func define(_ domain: Domain) { lock.withLock { self.domain = domain } }
    func take() -> ([String], Domain?) { lock.withLock { (files, domain) } }
    /// The running source writes into temporary overlays that are not merged back yet.
    func merging(_ pending: Bool) { lock.withLock { merge = pending } }
    var isMerging: Bool { lock.withLock { merge } }
}

extension Task where Success == Never, Failure == Never {
    /// Throws a code 2 error naming `what` if the current task was cancelled.
    static func checkCancellation(or what: String) throws(VMDriverError) {
        if Task.isCancelled { throw VMDriverError(.failed, "\(what) was cancelled") }
    }
}
