import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// What the README says migrate does, each claim run once on the two-host testbed: security
/// `normal`, `--keep-source`, cold `--force`, the default timeout, and `vmctl migrate` itself.
@Suite("Migration claims on the testbed", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct MigrationClaimsTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    func migrate(
        _ name: String, from: Testbed.Name, to: Testbed.Name, _ configure: (inout MigrationOptions) -> Void = { _ in }
    ) async throws(VMDriverError) -> MigrationResult {
        let options = Testbed.migrationOptions(configure)
        let host = try await Host.connect(from.uri)
        defer { Task { try? await host.close() } }
        return try await host.open(name).migrate(to: to.address, options: options).wait()
    }

    /// Security `normal`: the control connection is TLS (qemu+tls:// with the testbed's client
    /// certificate), the data plain; the guest moves and goes on.
    @Test func securityNormalMovesTheGuestOverATLSControlConnection() async throws {
        let guest = TestbedGuest("normal", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let beats = guest.log.heartbeats().count
        let result = try await migrate(guest.name, from: .hosta, to: .hostb) { $0.security = .normal }
        #expect(result.security == .normal)
        #expect(result.state == .running)
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: beats))
        #expect(guest.log.boots() == 1)
    }

    /// `--keep-source`: the guest runs on the target and stays defined (shut off) on the source.
    @Test func keepSourceLeavesTheDefinitionOnTheSource() async throws {
        let guest = TestbedGuest("keep", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let result = try await migrate(guest.name, from: .hosta, to: .hostb) { $0.keepSource = true }
        #expect(result.state == .running)
        #expect(try guest.state(on: .hostb) == .running)
        #expect(try guest.state(on: .hosta) == .shutoff)
        #expect(Set(try guest.hosts()) == [.hosta, .hostb])
    }

    /// Cold with a guest that ignores the power button (the boot-sector guest has no ACPI):
    /// without `force` the shutdown times out (code 3) and the guest still runs where it was;
    /// with it, the guest is destroyed, moved and started on the target.
    @Test func coldForceDestroysAGuestThatIgnoresThePowerButton() async throws {
        let guest = TestbedGuest("force", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.bootBootSector(on: .hosta, domainType: domainType)
        do {
            _ = try await migrate(guest.name, from: .hosta, to: .hostb) {
                $0.type = .cold
                $0.shutdownTimeout = .seconds(3)
            }
            Issue.record("the cold migration went ahead without --force")
        } catch {
            #expect(error.code == .timeout, "\(error)")
            #expect(error.message.contains("running on host 'hosta'"), "\(error.message)")
        }
        #expect(try guest.hosts() == [.hosta])
        #expect(try guest.state(on: .hosta) == .running)
        let result = try await migrate(guest.name, from: .hosta, to: .hostb) {
            $0.type = .cold
            $0.shutdownTimeout = .seconds(3)
            $0.force = true
        }
        #expect(result.type == .cold)
        #expect(result.steps.contains("started the VM on the target"), "\(result.steps)")
        #expect(try guest.hosts() == [.hostb])
        #expect(try guest.state(on: .hostb) == .running)
    }

    /// The default timeout: a minute, plus a second per 8 MiB of memory (the fixture: 256 MiB),
    /// plus half a minute and a minute per GiB for each copied disk; and `vmctl migrate` moves
    /// the guest from the command line, exit 0, its JSON saying what it did.
    @Test func vmctlMigratesWithTheDefaultScaledTimeout() async throws {
        let guest = TestbedGuest("cli", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let pki = ["VMDRIVER_PKIPATH": Testbed.clientPKI]
        let check = try VMCtl.run(
            ["-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--check", "--json"],
            environment: pki)
        #expect(check.status == 0, "\(check.stderr)")
        let decisions = try #require((try check.json() as? [String: Any])?["decisions"] as? [String], "\(check.stdout)")
        // 60 + 256 / 8, plus 30 + 0 for the 64 MiB data disk copied.
        #expect(decisions.contains("timeout 122 s"), "\(decisions)")
        let moved = try VMCtl.run(
            ["-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--json"], environment: pki)
        #expect(moved.status == 0, "\(moved.stderr)")
        let result = try #require(try moved.json() as? [String: Any], "\(moved.stdout)")
        #expect(result["state"] as? String == "running", "\(result)")
        #expect(result["storage"] as? String == "copy", "\(result)")
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
    }
}
