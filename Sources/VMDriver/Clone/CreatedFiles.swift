import Foundation
internal import Libvirt

/// What a clone has made so far, for rollback. Shared with pool threads, so locked.
final class CreatedFiles: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var files: [String] = []
    private var domain: Domain?

    private var overlays: [String] = []

    func add(_ path: String) { lock.withLock { files.append(path) } }
    /// A new top image the freeze gave the source (the source's, not the clone's).
    func addFreezeOverlay(_ path: String) { lock.withLock { overlays.append(path) } }
    func freezeOverlays() -> [String] { lock.withLock { overlays } }
    func define(_ domain: Domain) { lock.withLock { self.domain = domain } }
    func take() -> ([String], Domain?) { lock.withLock { (files, domain) } }
}

extension Task where Success == Never, Failure == Never {
    /// Throws a code 2 error naming `what` if the current task was cancelled.
    static func checkCancellation(or what: String) throws(VMDriverError) {
        if Task.isCancelled { throw VMDriverError(.failed, "\(what) was cancelled") }
    }
}
