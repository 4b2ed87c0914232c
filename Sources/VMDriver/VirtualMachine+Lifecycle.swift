import Foundation
internal import Libvirt

extension VirtualMachine {
    /// Starts the VM (resuming it from a managed save if it has one).
    /// - Throws: code 5 if it is already running. Calls `virDomainCreateWithFlags`.
    public func start() async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot start \(label)") { [domain] _ in
            let state = try Self.state(of: domain)
            guard !state.isActive else { throw VMDriverError(.invalidState, "cannot start \(label): it is \(state)") }
            try domain.start()
        }
    }

    /// Stops the VM at once, like pulling the plug; the guest gets no chance to flush.
    ///
    /// On a loaded host QEMU can outlive libvirt's wait after SIGKILL, and libvirt then answers
    /// "Failed to terminate process … Device or resource busy" with the process still dying:
    /// that answer is tried again, up to three times in all, as Nova does.
    /// - Throws: code 5 if it is not running. Calls `virDomainDestroyFlags`.
    public func destroy() async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot destroy \(label)") { [domain] _ in
            let state = try Self.state(of: domain)
            guard state.isActive else { throw VMDriverError(.invalidState, "cannot destroy \(label): it is \(state)") }
            try Self.destroyRetryingBusy(domain)
        }
    }

    /// `virDomainDestroy`, tried again while libvirt says the process is still ending (EBUSY),
    /// three tries in all; a domain that ended between the tries is done.
    static func destroyRetryingBusy(_ domain: Domain, tries: Int = 3) throws(LibvirtError) {
        var attempt = 1
        while true {
            do {
                return try domain.destroy()
            } catch let error where error.isBusy && attempt < tries {
                attempt += 1
                if let state = try? Self.state(of: domain), !state.isActive { return }
            }
        }
    }

    /// Suspends the VM to disk (VIX's suspend): its memory is saved to a file libvirt manages and
    /// QEMU stops; `start` resumes it where it was. Calls `virDomainManagedSave`.
    /// - Throws: code 5 unless it is running or paused.
    public func save() async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot save \(label) to disk") { [domain] _ in
            let state = try Self.state(of: domain)
            guard state == .running || state == .paused else {
                throw VMDriverError(.invalidState, "cannot save \(label) to disk: it is \(state)")
            }
            try domain.managedSave()
        }
    }

    /// Pauses the VM's vCPUs; memory stays in place.
    /// - Throws: code 5 unless it is running. Calls `virDomainSuspend`.
    public func suspend() async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot suspend \(label)") { [domain] _ in
            let state = try Self.state(of: domain)
            guard state == .running else { throw VMDriverError(.invalidState, "cannot suspend \(label): it is \(state)") }
            try domain.suspend()
        }
    }

    /// Resumes a paused VM.
    /// - Throws: code 5 unless it is paused. Calls `virDomainResume`.
    public func resume() async throws(VMDriverError) {
        let label = self.label
        try await host.blocking("cannot resume \(label)") { [domain] _ in
            let state = try Self.state(of: domain)
            guard state == .paused else {
                throw VMDriverError(.invalidState, "cannot resume \(label): it is \(state), not paused")
            }
            try domain.resume()
        }
    }

    /// Asks the guest to power off (ACPI power button) and returns a job that ends when the VM
    /// is off. The deadline is the job's own: past it, with `force` the VM is destroyed, without
    /// it the job fails with code 3 and the VM keeps running.
    /// - Throws: code 5 at once if the VM is not running. Calls `virDomainShutdownFlags`, then
    ///   waits for libvirt's lifecycle event (and polls `virDomainGetState` as a safety net).
    public func shutdown(timeout: Duration = .seconds(60), force: Bool = false) async throws(VMDriverError) -> Job<VMState> {
        let label = self.label
        let wakeup = Wakeup()
        let registration = try await host.blocking("cannot shut down \(label)") { [domain] connection in
            let state = try Self.state(of: domain)
            guard state.isActive else {
                throw VMDriverError(.invalidState, "cannot shut down \(label): it is \(state)")
            }
            let registration = try connection.onLifecycleEvent(of: domain) { _ in wakeup.fire() }
            try domain.shutdown()
            return registration
        }
        let host = self.host
        let domain = self.domain
        return Job(
            kind: .shutdown, subject: label,
            describe: { [self] in (try? await "the VM is \(state())") ?? "" }
        ) { context throws(VMDriverError) -> VMState in
            defer { registration.cancel() }
            let deadline = ContinuousClock.now + timeout
            while true {
                // Read even once cancelled: the cancellation's message says what state it left.
                let state = try await host.blocking("waiting for \(label) to power off", evenIfCancelled: true) { _ in
                    try Self.state(of: domain)
                }
                if !state.isActive { return state }
                let left = deadline - ContinuousClock.now
                if left <= .zero { break }
                if Task.isCancelled {
                    // The power button cannot be taken back: nothing is rolled back.
                    throw VMDriverError(
                        .failed,
                        "shutdown of \(label) was cancelled: the guest was already sent the ACPI power button, "
                            + "which cannot be taken back, and may still power off; the VM is \(state)")
                }
                context.report(
                    JobProgress(
                        phase: "waiting for the guest to power off (\(Job<VMState>.format(left)) left)",
                        percent: 100 * (1 - left / timeout)))
                await wakeup.wait(upTo: min(left, .milliseconds(500)))
            }
            guard force else {
                let now = (try? await host.blocking("") { _ in try Self.state(of: domain) }) ?? .unknown
                throw VMDriverError(
                    .timeout,
                    "\(label) did not power off within \(Job<VMState>.format(timeout)) and is still \(now): "
                        + "the guest ignored the ACPI power button; use destroy (or shutdown --force) to turn it off")
            }
            context.report(JobProgress(phase: "guest did not power off in time: destroying it", percent: 100))
            try await host.blocking("destroying \(label) after its shutdown deadline") { _ in
                if try Self.state(of: domain).isActive { try Self.destroyRetryingBusy(domain) }
            }
            return try await host.blocking("reading the state of \(label)") { _ in try Self.state(of: domain) }
        }
    }
}
