import Foundation
internal import Libvirt
import Synchronization

/// One thing `Host.watch` saw on a host: a lifecycle event of a VM, or where a VM's job is.
public struct HostEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// libvirt's lifecycle event (`event` and `detail` say which).
        case lifecycle
        /// A job runs on the VM: libvirt's figures now (`job`), and VMDriver's operation where
        /// its record is on the VM.
        case job
        /// The job seen before has ended.
        case jobEnded = "job-ended"
    }

    public var time: Date
    /// The host's name (libvirt's host name).
    public var host: String
    public var vm: String
    public var kind: Kind
    /// Lifecycle: libvirt's event and detail in words, as `virsh event` prints them
    /// ("started" "migrated", "stopped" "destroyed" …).
    public var event: String?
    public var detail: String?
    public var job: HostJob.LibvirtJob?
    /// VMDriver's operation on the VM and the process that runs it, when its record is there.
    public var operation: String?
}

extension Host {
    /// Watches the host (or one VM of it, by name) until the stream is dropped: every lifecycle
    /// event libvirt sends (`virConnectDomainEventRegisterAny`), and every `interval` the job
    /// of each VM that runs one (`virDomainGetJobStats`: progress, memory pass, dirty rate),
    /// whoever started it (this process, another vmctl, virsh), then its end. A VM that leaves
    /// the host (migrated) stays watched by name: its events on the host it came back to
    /// come from that host's watch.
    /// - Throws: code 2 if libvirt does not deliver events on this connection.
    public func watch(vm name: String? = nil, interval: Duration = .seconds(1)) async throws(VMDriverError)
        -> AsyncStream<HostEvent>
    {
        let (stream, continuation) = AsyncStream.makeStream(of: HostEvent.self, bufferingPolicy: .bufferingNewest(256))
        let hostName = self.name
        let registration = try await blocking("cannot watch the events of \(label)") { connection in
            try connection.onLifecycleEvent { event in
                guard name == nil || event.domainName == name else { return }
                continuation.yield(
                    HostEvent(
                        time: Date(), host: hostName, vm: event.domainName, kind: .lifecycle, event: event.kindName,
                        detail: event.detailName))
            }
        }
        let poller = Task { [self] in
            var busy: Set<String> = []
            while !Task.isCancelled {
                let seen =
                    (try? await blocking("") { connection -> [(String, HostJob.LibvirtJob, String?)] in
                        try connection.listAllDomains(.active).compactMap { domain in
                            guard let vm = try? domain.name(), name == nil || vm == name,
                                let job = (try? domain.jobStats()).flatMap(HostJob.LibvirtJob.init)
                            else { return nil }
                            let record = (try? OperationRecords.read(domain)).flatMap { $0 }
                            return (vm, job, record.map { "\($0.operationDescription) run by \($0.ownerDescription)" })
                        }
                    }) ?? []
                let now = Date()
                for (vm, job, operation) in seen {
                    continuation.yield(HostEvent(time: now, host: hostName, vm: vm, kind: .job, job: job, operation: operation))
                }
                let running = Set(seen.map(\.0))
                for vm in busy.subtracting(running).sorted() {
                    continuation.yield(HostEvent(time: now, host: hostName, vm: vm, kind: .jobEnded))
                }
                busy = running
                try? await Task.sleep(for: interval)
            }
        }
        continuation.onTermination = { _ in
            poller.cancel()
            registration.cancel()
        }
        return stream
    }
}
