import Foundation
internal import Libvirt
import Synchronization

/// The answer of a migration preflight (CIM CheckVirtualSystemIsMigratableToHost).
public struct MigrationCheck: Sendable, Codable, Equatable {
    public struct Problem: Sendable, Codable, Equatable {
        public var code: ReturnCode
        public var message: String
    }
    public var migratable: Bool { problems.isEmpty }
    /// Every reason the migration would be refused, with the code it would give.
    public var problems: [Problem]
    /// What VMDriver would do: type, storage mode, security, flags.
    public var decisions: [String]
    /// The guest CPU against the target's, the dirty rate sampled now, and what pre-copy will
    /// do at the bandwidth cap (nil when the target could not be reached).
    public var forecast: MigrationForecast?
}

extension VirtualMachine {
    /// Migrates the VM to another host (PrlVm_MigrateEx, CIM MigrateVirtualSystemToHost) and
    /// returns a job whose result says how long it took, the downtime and the bytes moved.
    /// Always peer-to-peer; the target keeps the definition and the source drops it unless
    /// `keepSource`.
    /// - Throws: before anything moves: code 4 for a destination in no supported format, the
    ///   VM's own host, or a name already used there; code 1 for what the hosts cannot do (with
    ///   what is missing); code 5 for a VM in the wrong state; code 6 for storage whose sharing
    ///   cannot be verified. The job ends with code 3 at its timeout (the VM keeps running on
    ///   the source) and says where the VM is whatever happens.
    public func migrate(
        to destination: String, options: MigrationOptions = MigrationOptions()
    ) async throws(VMDriverError) -> Job<MigrationResult> {
        // Another operation's record refuses at once (code 5 naming it and its process).
        try await OperationClaim.check(self)
        let (plan, problems) = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: false)
        guard let plan else {
            throw problems.first.map { VMDriverError($0.code, $0.message) } ?? VMDriverError(.failed, "no plan")
        }
        // The record, before anything is made on the target: the lock against a second process,
        // and what a later `vmctl abort` reads if this process dies.
        let claim: OperationClaim
        do throws(VMDriverError) {
            claim = try await OperationClaim.claim(
                self, operation: .migrate, target: plan.destinationHost.uri, targetName: plan.targetName)
        } catch {
            try? await plan.destinationHost.close()
            throw error
        }
        // Each image and pool made on the target is in the record before the job starts.
        plan.preparation.onChange { images, pools in
            await claim.update {
                $0.images = images
                $0.pools = pools
            }
        }
        // What the target needs first: the home folder, the images disks are copied into.
        do throws(VMDriverError) {
            if let home = plan.options.home { try await plan.preparation.makeHome(home) }
            // A move that seeds its chain gets its image once the chain is there (in the job).
            if plan.type != .cold { try await plan.preparation.createImages(plan.moves.filter(\.seed.isEmpty)) }
        } catch {
            await plan.preparation.rollback()
            await claim.release()
            try? await plan.destinationHost.close()
            throw error
        }
        let (domain, host) = (self.domain, self.host)
        return Job(
            kind: .migrate, subject: "migration of \(label) to \(plan.destination)",
            describe: { await plan.whereIsTheVM() },
            // At once, through the control lane; the monitor loop aborts too when it sees the
            // cancellation (whichever comes first: a second abort of an ended job does nothing).
            onCancel: { try? await host.blocking("", evenIfCancelled: true) { _ in try domain.abortJob() } }
        ) { context throws(VMDriverError) in
            try await plan.execute(context: context, claim: claim)
        }
    }

    /// Checks whether the VM could migrate, changing nothing, and lists every reason it could not.
    /// It also forecasts the move: the guest CPU compared on the target
    /// (`virConnectCompareHypervisorCPU`; incompatible is code 6 naming the missing features),
    /// for a running VM a one-second sample of its dirty rate (`virDomainStartDirtyRateCalc`),
    /// and with a bandwidth cap what plain pre-copy will do: passes, time, downtime, whether it
    /// converges, and which step of the convergence policy it will need. For security normal
    /// and high, the TLS files used and their expiry, and whether the target's certificate, as
    /// its libvirtd presents it, names the address dialled (not naming it is code 6).
    public func checkMigration(to destination: String, options: MigrationOptions = MigrationOptions()) async -> MigrationCheck {
        let made = await MigrationPlan.make(vm: self, destination: destination, options: options, collectAll: true)
        let plan = made.0
        var problems = made.1
        var forecast: MigrationForecast?
        if let plan {
            let (predicted, cpuProblems) = await self.forecast(plan: plan, options: options)
            forecast = predicted
            problems += cpuProblems
        }
        // TLS, whether or not the connection to the target worked: it says why one did not.
        if options.security != .low, let parsed = try? MigrationDestination(parsing: destination) {
            let pki = PKI(path: options.clientPKIPath)
            let tls = try? await host.blocking("cannot check TLS") { _ in TLSProbe.check(destination: parsed, pki: pki) }
            var withTLS = forecast ?? MigrationForecast()
            withTLS.tls = tls
            forecast = withTLS
            let found = tls.map { TLSProbe.problems($0, security: options.security) } ?? []
            // After the refusals of the input; before a failed TLS connection, which they explain.
            let failedConnection = problems.firstIndex { $0.message.hasPrefix("cannot make a TLS connection") }
            problems.insert(contentsOf: found, at: failedConnection ?? problems.endIndex)
        }
        try? await plan?.destinationHost.close()
        // Another operation in progress (or one whose process died) would refuse it too.
        do throws(VMDriverError) {
            try await OperationClaim.check(self)
        } catch {
            problems.insert(MigrationCheck.Problem(code: error.code, message: error.message), at: 0)
        }
        return MigrationCheck(problems: problems, decisions: plan?.decisions ?? [], forecast: forecast)
    }
}
