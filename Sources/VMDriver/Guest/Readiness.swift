import Foundation
internal import Libvirt

/// What "ready" means for a guest someone is about to use (`VirtualMachine.start(waitingFor:timeout:)`).
public enum Readiness: Sendable, Equatable, CustomStringConvertible {
    /// An interface has an address (leases, ARP, or the agent: `addresses()`).
    case ip
    /// qemu-guest-agent answers a ping through libvirt (`guest-ping`).
    case agent
    /// The serial port's log shows a line matching the regular expression (output from this
    /// start on, not what an earlier boot printed).
    case serial(pattern: String)

    public var description: String {
        switch self {
        case .ip: "ip"
        case .agent: "agent"
        case .serial(let pattern): "serial:\(pattern)"
        }
    }

    /// Parses `ip`, `agent` or `serial:PATTERN`; nil otherwise.
    public init?(parsing text: String) {
        switch text {
        case "ip": self = .ip
        case "agent": self = .agent
        default:
            guard text.hasPrefix("serial:"), text.count > "serial:".count else { return nil }
            self = .serial(pattern: String(text.dropFirst("serial:".count)))
        }
    }
}

/// What the guest showed when it became ready.
public struct ReadinessReport: Sendable, Codable, Equatable {
    /// `ip`, `agent` or `serial:PATTERN`.
    public var condition: String
    /// From the start (or the start of the wait) until the guest was ready.
    public var seconds: Double
    /// The VM's interfaces and addresses then (for `ip`, at least one has one).
    public var interfaces: [GuestInterface]
    /// For `serial`: the line that matched.
    public var line: String?
}

extension VirtualMachine {
    /// Starts the VM and waits until it is ready: an address, the agent answering, or a line on
    /// its serial port. The job's result says what the guest showed; cancelling it stops the
    /// wait and leaves the VM running.
    /// - Throws: before starting it: code 1 when the VM cannot show that (no interface for
    ///   `ip`, no agent channel for `agent`, no serial port logged to a file for `serial`);
    ///   code 4 for a pattern that is not a regular expression; code 5 if it runs already. The
    ///   job ends with code 3 at the timeout (the VM left running) and code 2 if the VM stops
    ///   first.
    public func start(waitingFor readiness: Readiness, timeout: Duration = .seconds(120)) async throws(VMDriverError)
        -> Job<ReadinessReport>
    {
        let watch = try await ReadinessWatch.prepare(self, readiness)
        try await start()
        return watch.job(timeout: timeout)
    }

    /// Waits until the running VM is ready (see `start(waitingFor:timeout:)`); `serial` looks at
    /// what the guest prints from now on.
    public func waitUntilReady(_ readiness: Readiness, timeout: Duration = .seconds(120)) async throws(VMDriverError)
        -> Job<ReadinessReport>
    {
        let watch = try await ReadinessWatch.prepare(self, readiness)
        return watch.job(timeout: timeout)
    }
}

/// A wait for one VM's readiness, checked before the VM starts.
struct ReadinessWatch: Sendable {
    let vm: VirtualMachine
    let readiness: Readiness
    /// For `serial`: the log and its size before the start.
    let serial: (path: String, offset: Int)?

    static func prepare(_ vm: VirtualMachine, _ readiness: Readiness) async throws(VMDriverError) -> ReadinessWatch {
        let label = vm.label
        if case .serial(let pattern) = readiness {
            do {
                _ = try Regex(pattern)
            } catch {
                throw VMDriverError(.invalidParameter, "\(pattern.debugDescription) is not a regular expression: \(error)")
            }
        }
        let host = vm.host
        let serial = try await host.blocking("cannot read the definition of \(label)") {
            [domain = vm.domain] _ -> (String, Int)? in
            let devices = try GuestDevices(xml: try domain.xmlDescription(try domain.isActive() ? [] : [.inactive]))
            switch readiness {
            case .ip:
                guard !devices.interfaces.isEmpty else {
                    throw VMDriverError(.notSupported, "\(label) has no network interface: it can never have an address")
                }
                return nil
            case .agent:
                try devices.requireAgent(label)
                return nil
            case .serial:
                guard let log = devices.serialLog else {
                    throw VMDriverError(
                        .notSupported,
                        "\(label)'s first serial port is not logged to a file (<serial type='file'> or <log file='…'/>): there is nothing to read"
                    )
                }
                return (log, host.storage.exists(log) ? try Self.read(log, from: 0, host: host).count : 0)
            }
        }
        return ReadinessWatch(vm: vm, readiness: readiness, serial: serial)
    }

    func job(timeout: Duration) -> Job<ReadinessReport> {
        let (vm, label) = (self.vm, self.vm.label)
        return Job(
            kind: .start, subject: "wait for \(label) (\(readiness))",
            describe: { (try? await "\(label) is \(vm.state()); it is left so") ?? "" }
        ) { context throws(VMDriverError) in
            try await run(timeout: timeout, context: context)
        }
    }

    private func run(timeout: Duration, context: JobContext) async throws(VMDriverError) -> ReadinessReport {
        let started = ContinuousClock.now
        let deadline = started + timeout
        let (vm, label, host) = (self.vm, self.vm.label, self.vm.host)
        context.report(JobProgress(phase: "waiting for \(readiness)"))
        while true {
            if Task.isCancelled {
                let state =
                    (try? await host.blocking("", evenIfCancelled: true) { [domain = vm.domain] _ in
                        try VirtualMachine.state(of: domain)
                    }).map { "\($0)" } ?? "in an unknown state"
                throw VMDriverError(
                    .failed, "the wait for \(label) (\(readiness)) was cancelled; \(label) is \(state) (it is left so)")
            }
            let state = try await vm.state()
            guard state == .running || state == .paused else {
                throw VMDriverError(.failed, "\(label) stopped (it is \(state)) before it was ready (\(readiness))")
            }
            var line: String?
            var ready = false
            switch readiness {
            case .ip:
                ready = try await vm.addresses().contains { !$0.addresses.isEmpty }
            case .agent:
                ready = try await host.blocking("cannot ask the guest agent of \(label)") { [domain = vm.domain] _ in
                    do {
                        _ = try domain.agentCommand(#"{"execute":"guest-ping"}"#, timeoutSeconds: 1)
                        return true
                    } catch let error as LibvirtError where error.code == .agentUnresponsive {
                        // Not running yet, or not answering: asked again.
                        return false
                    } catch let error as LibvirtError
                        where error.code == .argumentUnsupported || error.code == .operationUnsupported
                    {
                        throw VMDriverError(.notSupported, "\(label) cannot be asked through a guest agent: \(error.message)")
                    }
                }
            case .serial:
                line = try await newSerialLine()
                ready = line != nil
            }
            if ready {
                let interfaces = (try? await vm.addresses()) ?? []
                return ReadinessReport(
                    condition: readiness.description, seconds: (ContinuousClock.now - started).seconds, interfaces: interfaces,
                    line: line)
            }
            guard ContinuousClock.now < deadline else {
                throw VMDriverError(
                    .timeout, "\(label) was not ready (\(readiness)) after \(Int(timeout.seconds)) s; it is left \(state)")
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// The first line the guest printed since the start that matches the pattern.
    private func newSerialLine() async throws(VMDriverError) -> String? {
        guard let serial, case .serial(let text) = readiness, let pattern = try? Regex(text) else { return nil }
        let host = vm.host
        let bytes = try await host.blocking("cannot read \(serial.path)") { _ in
            host.storage.exists(serial.path) ? try Self.read(serial.path, from: serial.offset, host: host) : Data()
        }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .first { (try? pattern.firstMatch(in: $0)) != nil }
    }

    /// The bytes of the host's file at `path` from `offset` on, through the host's storage (a
    /// log that shrank was started afresh: all of it).
    static func read(_ path: String, from offset: Int, host: Host) throws -> Data {
        let (reader, _) = try host.storage.reader(path)
        var data = Data()
        loop: while true {
            switch try reader.peek() {
            case .end: break loop
            case .zeros(let count):
                data.append(contentsOf: repeatElement(0, count: count))
                reader.consume(count)
            case .data(let slice):
                data.append(contentsOf: slice)
                reader.consume(slice.count)
            }
        }
        return data.count >= offset ? data.dropFirst(offset) : data
    }
}
