import Foundation
import Libvirt
import Testing

@testable import VMDriver

/// Migration between the testbed's two real libvirt hosts, with the Linux fixture guest.
@Suite("Migration on the two-host testbed", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct MigrationTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    func options(_ configure: (inout MigrationOptions) -> Void = { _ in }) -> MigrationOptions {
        var options = MigrationOptions()
        options.clientPKIPath = Testbed.clientPKI
        configure(&options)
        return options
    }

    /// Opens the guest on `from` and migrates it to `to`; the host connection is closed after.
    func migrate(
        _ name: String, from: Testbed.Name, to: Testbed.Name, _ options: MigrationOptions, destination: String? = nil
    ) async throws(VMDriverError) -> MigrationResult {
        let host = try await Host.connect(from.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(name)
        let job = try await vm.migrate(to: destination ?? to.address, options: options)
        return try await job.wait()
    }

    /// The error a migration ends with (thrown before the job or by it).
    func migrationError(
        _ name: String, from: Testbed.Name, to: Testbed.Name, _ options: MigrationOptions, destination: String? = nil
    ) async -> VMDriverError? {
        do {
            _ = try await migrate(name, from: from, to: to, options, destination: destination)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Types and security levels, there and back

    static let roundTrips: [(MigrationOptions.MigrationType, MigrationOptions.Security)] = [
        (.hot, .low), (.hot, .high), (.warm, .low), (.warm, .high), (.cold, .low), (.cold, .high),
    ]

    @Test(arguments: roundTrips)
    func thereAndBack(type: MigrationOptions.MigrationType, security: MigrationOptions.Security) async throws {
        let guest = TestbedGuest("\(type.rawValue)-\(security.rawValue)", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, tag: "\(type)")
        let markers = try guest.markersOnDisk(guest.diskPath)
        #expect(markers == ["boot 1 tag=\(type)"])
        let options = options {
            $0.type = type
            $0.security = security
        }
        var boots = 1
        for (from, to) in [(Testbed.Name.hosta, Testbed.Name.hostb), (.hostb, .hosta)] {
            let beats = guest.log.heartbeats().count
            let result = try await migrate(guest.name, from: from, to: to, options)
            #expect(result.type == type)
            #expect(result.security == security)
            #expect(result.storage == .shared)
            #expect(result.state == .running)
            // Defined on exactly one host, running there, nothing left on the source.
            #expect(try guest.hosts() == [to])
            #expect(try guest.state(on: to) == .running)
            #expect(result.seconds > 0)
            if type == .cold {
                // Shut down cleanly, moved, started again: a new boot with the old data.
                boots += 1
                #expect(result.steps.contains("started the VM on the target"))
                #expect(await Integration.waitFor(60) { guest.log.heartbeats().count >= 1 && guest.log.markers()?.count == boots })
            } else {
                // The guest never restarted: the heartbeat goes on from where it was.
                #expect(try #require(result.downtimeMilliseconds) < 5_000)
                #expect(try #require(result.bytesTransferred) > 1 << 20)
                #expect(await guest.keepsBeating(after: beats), "no heartbeat after the \(type) migration to \(to)")
                #expect(guest.log.lines().filter { $0.hasPrefix("VMDRIVER-INIT") }.count == 1)
            }
        }
        // The data written before the migrations is on the disk after them.
        let after = try guest.markersOnDisk(guest.diskPath)
        #expect(after.first == "boot 1 tag=\(type)")
        #expect(after.count == boots)
    }
}
