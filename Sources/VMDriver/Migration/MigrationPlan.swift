import Foundation
internal import Libvirt
import Synchronization

/// A migration, checked and decided.
struct MigrationPlan: Sendable {
    let vm: VirtualMachine
    let destination: MigrationDestination
    let options: MigrationOptions
    let type: MigrationOptions.MigrationType
    let storage: MigrationOptions.Storage
    /// The URI the source's libvirtd connects to (peer-to-peer).
    let peerURI: String
    let destinationHost: Host
    let flags: Domain.MigrateFlags
    let parameters: Domain.MigrationParameters
    let wasActive: Bool
    let timeout: Duration
    let targetName: String
    let decisions: [String]
    /// How each disk travels.
    let moves: [DiskMove]
    /// What VMDriver makes on the target, taken away if the migration fails.
    let preparation: TargetPreparation
    /// The VM's snapshots, taken off the source for the move and redefined where it ends.
    let snapshots: SnapshotCarry
    /// The cloud-init seed copied to the target (from, to), when its folder is not shared.
    let seed: (source: String, target: String)?

    typealias Problem = MigrationCheck.Problem

    static func make(
        vm: VirtualMachine, destination text: String, options: MigrationOptions, collectAll: Bool
    ) async -> (MigrationPlan?, [Problem]) {
        var problems: [Problem] = []
        let options = {
            var options = options
            if let home = options.home, Self.badHome(home) == nil { options.home = (home as NSString).standardizingPath }
            return options
        }()
        func fail(_ code: ReturnCode, _ message: String) { problems.append(Problem(code: code, message: message)) }
        let label = vm.label
        let source = vm.host

        // The destination string.
        let destination: MigrationDestination
        do {
            destination = try MigrationDestination(parsing: text)
        } catch {
            return (nil, [Problem(code: error.code, message: error.message)])
        }
        // The options, before any host is asked: bad input is refused with nothing touched.
        problems += Self.validate(options: options, destination: destination)
        if !problems.isEmpty && !collectAll { return (nil, problems) }
        let peerURI = Self.peerURI(destination: destination, security: options.security)
        // What the source host can do.
        let caps: Capabilities
        do {
            caps = try await CapabilityProbe(host: source, probeAccelerators: false, pkiPath: options.clientPKIPath).run()
        } catch {
            return (nil, problems + [Problem(code: error.code, message: error.message)])
        }
        if caps.migrationTypes.values.allSatisfy({ !$0.isAvailable }) {
            return (
                nil,
                problems + [
                    Problem(code: .notSupported, message: "the \(source.driver) driver of \(source.label) does not migrate VMs")
                ]
            )
        }
        if let level = caps.securityLevels[options.security], level.status == .unavailable {
            fail(
                .notSupported,
                "security '\(options.security.rawValue)' is not available on \(source.label): \(level.reason ?? "")")
        }
        // Post-copy is the target's to give (its QEMU needs userfaultfd): tried, see execute.
        for (wanted, feature, name) in [
            (options.autoConverge, Capabilities.Feature.autoConverge, "auto-converge"),
            (options.compress, .compression, "compression"),
            ((options.parallelConnections ?? 0) > 1, .multifd, "parallel migration (multifd)"),
        ] where wanted {
            if let support = caps.features[feature], support.status == .unavailable {
                fail(.notSupported, "\(name) is not available on \(source.label): \(support.reason ?? "")")
            }
        }
        if !problems.isEmpty && !collectAll { return (nil, problems) }
        let clientURI = Self.clientURI(peerURI: peerURI, pkiPath: options.clientPKIPath)
        let target: Host
        do {
            target = try await Host.connect(clientURI, logger: source.logger)
        } catch {
            let tls = peerURI.contains("+tls://")
            problems.append(
                Problem(
                    code: tls ? .notSupported : .failed,
                    message: tls
                        ? "cannot make a TLS connection to \(destination): \(error.message) (security '\(options.security.rawValue)' needs certificates on both hosts)"
                        : "cannot reach the libvirt of \(destination): \(error.message)"))
            return (nil, problems)
        }

        let targetName = options.newName ?? vm.name
        let facts: MigrationFacts
        do throws(VMDriverError) {
            facts = try await MigrationFacts.gather(vm: vm, target: target, options: options, targetName: targetName)
        } catch {
            fail(error.code, error.message)
            try? await target.close()
            return (nil, problems)
        }
        let decided = Self.decide(
            facts: facts, options: options, destination: destination, caps: caps, peerURI: peerURI, targetName: targetName,
            label: label, sourceLabel: source.label, targetLabel: target.label)
        problems += decided.problems
        if !problems.isEmpty && !collectAll {
            try? await target.close()
            return (nil, problems)
        }
        let plan = MigrationPlan(
            vm: vm, destination: destination, options: options, type: decided.type, storage: decided.storage,
            peerURI: peerURI, destinationHost: target, flags: decided.flags, parameters: decided.parameters,
            wasActive: facts.state.isActive, timeout: decided.timeout, targetName: targetName,
            decisions: decided.decisions, moves: decided.moves,
            preparation: TargetPreparation(target: target, hostUUIDs: facts.hostUUIDs),
            snapshots: facts.snapshots, seed: decided.seed)
        return (plan, problems)
    }
}
