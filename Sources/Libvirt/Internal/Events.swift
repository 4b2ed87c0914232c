internal import CLibvirt
import Foundation
import Synchronization

/// A lifecycle event of a domain (`virDomainEventType`), with libvirt's detail number.
public struct LifecycleEvent: Sendable, Hashable {
    public enum Kind: Int32, Sendable {
        /// VIR_DOMAIN_EVENT_DEFINED
        case defined = 0
        /// VIR_DOMAIN_EVENT_UNDEFINED
        case undefined = 1
        /// VIR_DOMAIN_EVENT_STARTED
        case started = 2
        /// VIR_DOMAIN_EVENT_SUSPENDED
        case suspended = 3
        /// VIR_DOMAIN_EVENT_RESUMED
        case resumed = 4
        /// VIR_DOMAIN_EVENT_STOPPED
        case stopped = 5
        /// VIR_DOMAIN_EVENT_SHUTDOWN
        case shutdown = 6
        /// VIR_DOMAIN_EVENT_PMSUSPENDED
        case pmSuspended = 7
        /// VIR_DOMAIN_EVENT_CRASHED
        case crashed = 8
    }
    public let kind: Kind
    public let detail: Int32
    /// The name of the domain the event is about.
    public let domainName: String

    /// The kind in words, as `virsh event` prints it: "started", "stopped" …
    public var kindName: String {
        switch kind {
        case .defined: "defined"
        case .undefined: "undefined"
        case .started: "started"
        case .suspended: "suspended"
        case .resumed: "resumed"
        case .stopped: "stopped"
        case .shutdown: "shutdown"
        case .pmSuspended: "pmsuspended"
        case .crashed: "crashed"
        }
    }

    /// libvirt's detail in words ("booted", "migrated", "destroyed" …), read against libvirt's
    /// own constants (`virDomainEvent*DetailType`); the number for one this layer does not name.
    public var detailName: String {
        let names: [UInt32: String] =
            switch kind {
            case .defined:
                [
                    VIR_DOMAIN_EVENT_DEFINED_ADDED.rawValue: "added", VIR_DOMAIN_EVENT_DEFINED_UPDATED.rawValue: "updated",
                    VIR_DOMAIN_EVENT_DEFINED_RENAMED.rawValue: "renamed",
                    VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT.rawValue: "from snapshot",
                ]
            case .undefined:
                [VIR_DOMAIN_EVENT_UNDEFINED_REMOVED.rawValue: "removed", VIR_DOMAIN_EVENT_UNDEFINED_RENAMED.rawValue: "renamed"]
            case .started:
                [
                    VIR_DOMAIN_EVENT_STARTED_BOOTED.rawValue: "booted", VIR_DOMAIN_EVENT_STARTED_MIGRATED.rawValue: "migrated",
                    VIR_DOMAIN_EVENT_STARTED_RESTORED.rawValue: "restored",
                    VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT.rawValue: "from snapshot",
                    VIR_DOMAIN_EVENT_STARTED_WAKEUP.rawValue: "wakeup",
                ]
            case .suspended:
                [
                    VIR_DOMAIN_EVENT_SUSPENDED_PAUSED.rawValue: "paused",
                    VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED.rawValue: "migrated",
                    VIR_DOMAIN_EVENT_SUSPENDED_IOERROR.rawValue: "I/O error",
                    VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG.rawValue: "watchdog",
                    VIR_DOMAIN_EVENT_SUSPENDED_RESTORED.rawValue: "restored",
                    VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT.rawValue: "from snapshot",
                    VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR.rawValue: "API error",
                    VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY.rawValue: "post-copy",
                    VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED.rawValue: "post-copy failed",
                ]
            case .resumed:
                [
                    VIR_DOMAIN_EVENT_RESUMED_UNPAUSED.rawValue: "unpaused",
                    VIR_DOMAIN_EVENT_RESUMED_MIGRATED.rawValue: "migrated",
                    VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT.rawValue: "from snapshot",
                    VIR_DOMAIN_EVENT_RESUMED_POSTCOPY.rawValue: "post-copy",
                ]
            case .stopped:
                [
                    VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN.rawValue: "shutdown",
                    VIR_DOMAIN_EVENT_STOPPED_DESTROYED.rawValue: "destroyed",
                    VIR_DOMAIN_EVENT_STOPPED_CRASHED.rawValue: "crashed", VIR_DOMAIN_EVENT_STOPPED_MIGRATED.rawValue: "migrated",
                    VIR_DOMAIN_EVENT_STOPPED_SAVED.rawValue: "saved", VIR_DOMAIN_EVENT_STOPPED_FAILED.rawValue: "failed",
                    VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT.rawValue: "from snapshot",
                ]
            case .shutdown:
                [
                    VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED.rawValue: "finished", VIR_DOMAIN_EVENT_SHUTDOWN_GUEST.rawValue: "guest",
                    VIR_DOMAIN_EVENT_SHUTDOWN_HOST.rawValue: "host",
                ]
            case .pmSuspended:
                [VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY.rawValue: "memory", VIR_DOMAIN_EVENT_PMSUSPENDED_DISK.rawValue: "disk"]
            case .crashed:
                [VIR_DOMAIN_EVENT_CRASHED_PANICKED.rawValue: "panicked"]
            }
        return names[UInt32(bitPattern: detail)] ?? "\(detail)"
    }
}

/// The Swift closure behind one registration; libvirt holds it as an unmanaged opaque pointer
/// and releases it through the free callback when the registration ends.
private final class HandlerBox<Event> {
    let handler: @Sendable (Event) -> Void
    init(_ handler: @escaping @Sendable (Event) -> Void) { self.handler = handler }
}

/// A live event registration. `cancel()` (or `deinit`) deregisters it.
public final class EventRegistration: @unchecked Sendable {
    // The id and connection never change; deregistration is guarded by an atomic flag.
    private let connection: Connection
    private let id: Int32
    private let cancelled = Atomic(false)

    init(connection: Connection, id: Int32) {
        self.connection = connection
        self.id = id
    }

    /// Stops delivery. Calls `virConnectDomainEventDeregisterAny`.
    public func cancel() {
        guard !cancelled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if virConnectDomainEventDeregisterAny(connection.pointer, id) < 0 { virResetLastError() }
    }

    deinit { cancel() }
}

extension Connection {
    /// Calls `handler` on libvirt's event-loop thread for each lifecycle event of `domain`
    /// (of every domain when nil). Keep the returned registration alive as long as events are
    /// wanted. Calls `virConnectDomainEventRegisterAny` with VIR_DOMAIN_EVENT_ID_LIFECYCLE.
    public func onLifecycleEvent(
        of domain: Domain? = nil, _ handler: @escaping @Sendable (LifecycleEvent) -> Void
    ) throws(LibvirtError) -> EventRegistration {
        try register(
            VIR_DOMAIN_EVENT_ID_LIFECYCLE, of: domain,
            callback: unsafeBitCast(
                lifecycleTrampoline as virConnectDomainEventCallback, to: virConnectDomainEventGenericCallback.self),
            handler: handler)
    }

    /// One `virConnectDomainEventRegisterAny` for any event: the handler is boxed, handed to
    /// libvirt, and released by libvirt's free callback (or here, when registering fails).
    private func register<Event>(
        _ event: virDomainEventID, of domain: Domain?, callback: virConnectDomainEventGenericCallback,
        handler: @escaping @Sendable (Event) -> Void
    ) throws(LibvirtError) -> EventRegistration {
        let box = Unmanaged<AnyObject>.passRetained(HandlerBox(handler)).toOpaque()
        let id: Int32
        do {
            id = try call("virConnectDomainEventRegisterAny") {
                virConnectDomainEventRegisterAny(
                    pointer, domain?.pointer, Int32(event.rawValue), callback, box,
                    { opaque in opaque.map { Unmanaged<AnyObject>.fromOpaque($0).release() } })
            }
        } catch {
            // libvirt does not call the free callback when registration fails.
            Unmanaged<AnyObject>.fromOpaque(box).release()
            throw error
        }
        return EventRegistration(connection: self, id: id)
    }
}

/// The C callback: the domain pointer is only lent for the call, so we read its name here
/// rather than wrapping it.
private let lifecycleTrampoline: virConnectDomainEventCallback = { _, domain, event, detail, opaque in
    guard let opaque, let domain else { return 0 }
    let box = Unmanaged<HandlerBox<LifecycleEvent>>.fromOpaque(opaque).takeUnretainedValue()
    let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
    if let kind = LifecycleEvent.Kind(rawValue: event) {
        box.handler(LifecycleEvent(kind: kind, detail: detail, domainName: name))
    }
    return 0
}

/// A block job's end or readiness (`VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2`: the disk named by its
/// target, `vda`).
public struct BlockJobEvent: Sendable, Hashable {
    /// `virConnectDomainEventBlockJobStatus`.
    public enum Status: Int32, Sendable {
        /// VIR_DOMAIN_BLOCK_JOB_COMPLETED
        case completed = 0
        /// VIR_DOMAIN_BLOCK_JOB_FAILED
        case failed = 1
        /// VIR_DOMAIN_BLOCK_JOB_CANCELED
        case cancelled = 2
        /// VIR_DOMAIN_BLOCK_JOB_READY: everything is copied; a pivot (or abort) ends the job.
        case ready = 3
    }
    /// The disk's target (`vda`).
    public let disk: String
    /// `virDomainBlockJobType`: pull, copy, commit, active commit, backup.
    public let type: Int32
    public let status: Status
}

extension Connection {
    /// Calls `handler` on libvirt's event-loop thread when a block job of `domain` ends or is
    /// ready to pivot. Keep the returned registration alive as long as events are wanted.
    /// Calls `virConnectDomainEventRegisterAny` with VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2.
    public func onBlockJobEvent(
        of domain: Domain, _ handler: @escaping @Sendable (BlockJobEvent) -> Void
    ) throws(LibvirtError) -> EventRegistration {
        try register(
            VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, of: domain,
            callback: unsafeBitCast(
                blockJobTrampoline as virConnectDomainEventBlockJobCallback, to: virConnectDomainEventGenericCallback.self),
            handler: handler)
    }
}

private let blockJobTrampoline: virConnectDomainEventBlockJobCallback = { _, _, disk, type, status, opaque in
    guard let opaque, let disk, let status = BlockJobEvent.Status(rawValue: status) else { return }
    let box = Unmanaged<HandlerBox<BlockJobEvent>>.fromOpaque(opaque).takeUnretainedValue()
    box.handler(BlockJobEvent(disk: String(cString: disk), type: type, status: status))
}

extension Connection {
    /// Calls `handler` on libvirt's event-loop thread each time an outgoing migration of
    /// `domain` starts another pass over the guest's memory, with the pass's number. Calls
    /// `virConnectDomainEventRegisterAny` with VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION.
    public func onMigrationIteration(
        of domain: Domain, _ handler: @escaping @Sendable (Int32) -> Void
    ) throws(LibvirtError) -> EventRegistration {
        try register(
            VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, of: domain,
            callback: unsafeBitCast(
                migrationIterationTrampoline as virConnectDomainEventMigrationIterationCallback,
                to: virConnectDomainEventGenericCallback.self),
            handler: handler)
    }
}

private let migrationIterationTrampoline: virConnectDomainEventMigrationIterationCallback = { _, _, iteration, opaque in
    guard let opaque else { return }
    Unmanaged<HandlerBox<Int32>>.fromOpaque(opaque).takeUnretainedValue().handler(iteration)
}
