import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// A VM whose disk is in a folder no storage pool covers migrates as virsh would migrate it:
/// VMDriver asks the hosts' storage APIs about that folder through transient pools (the
/// sharing probe, the target's images) and takes them away again.
@Suite(
    "Migration from folders no pool covers", .serialized,
    .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct UnpooledMigrationTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    /// The pools each host has, by name.
    func pools() throws -> [Testbed.Name: [String]] {
        var pools: [Testbed.Name: [String]] = [:]
        for host in Testbed.Name.allCases {
            let connection = try Testbed.connection(host)
            defer { try? connection.close() }
            pools[host] = try connection.listAllStoragePools().map { try $0.name() }.sorted()
        }
        return pools
    }

    /// Defines and boots the Linux fixture on hosta with its disk at `disk` (as hosta sees it;
    /// `diskFromHere` is the same file from this machine).
    func boot(_ guest: TestbedGuest, disk: String, diskFromHere: String) async throws {
        try FileManager.default.copyItem(
            at: Integration.fixtures.appendingPathComponent("data.qcow2"), to: URL(fileURLWithPath: diskFromHere))
        let xml = try Integration.fill(
            "linux-domain.xml.in",
            [
                "@NAME@": guest.name, "@DISK@": disk, "@SERIAL@": guest.serialPath,
                "@KERNEL@": Integration.fixtures.appendingPathComponent("vmlinuz").path,
                "@INITRD@": Integration.fixtures.appendingPathComponent("initrd.img").path,
                "@TAG@": "nopool", "@DOMAIN_TYPE@": domainType,
            ])
        let connection = try Testbed.connection(.hosta)
        defer { try? connection.close() }
        try connection.defineDomain(xml: xml).start()
        #expect(await Integration.waitFor(60) { guest.log.heartbeats().count >= 1 }, "\(guest.log.lines().suffix(5))")
    }

    func migrate(_ name: String, from: Testbed.Name, to: Testbed.Name, storage: MigrationOptions.Storage) async throws
        -> MigrationResult
    {
        let host = try await Host.connect(from.uri)
        defer { Task { try? await host.close() } }
        var options = MigrationOptions()
        options.storage = storage
        return try await host.open(name).migrate(to: to.address, options: options).wait()
    }

    /// A folder both hosts see at the same path, covered by no pool (a subfolder of the shared
    /// pool's folder: pools do not look into subfolders): the probe finds it shared, the disk
    /// stays in place, there and back (auto, then --storage shared).
    @Test func aSharedFolderNoPoolCoversStaysShared() async throws {
        let guest = TestbedGuest("nopool-shared", domainType: domainType)
        let folder = "\(Testbed.shared)/\(guest.name)-dir"
        defer {
            guest.cleanUp()
            try? FileManager.default.removeItem(atPath: folder)
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let disk = "\(folder)/disk.qcow2"
        try await boot(guest, disk: disk, diskFromHere: disk)
        let poolsBefore = try pools()

        let there = try await migrate(guest.name, from: .hosta, to: .hostb, storage: .auto)
        #expect(there.disks.map(\.mode) == ["shared"], "\(there.disks)")
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
        #expect(try pools() == poolsBefore, "no transient pool left")

        let back = try await migrate(guest.name, from: .hostb, to: .hosta, storage: .shared)
        #expect(back.disks.map(\.mode) == ["shared"])
        #expect(try guest.hosts() == [.hosta])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
        #expect(FileManager.default.fileExists(atPath: disk))
        #expect(try pools() == poolsBefore, "no transient pool left")
        #expect(guest.log.boots() == 1, "the guest never rebooted")
    }

    /// A folder in hosta's own storage that no pool covers and hostb does not have: the disk
    /// is copied (--storage copy), the folder made on hostb, the source's copy removed; then
    /// back with auto (the folder exists on hosta, still in no pool): copied again. Every
    /// byte of the disk arrives; the transient pools are gone afterwards.
    @Test func aLocalFolderNoPoolCoversIsCopiedThereAndBack() async throws {
        let guest = TestbedGuest("nopool-copy", placement: .local(.hosta), domainType: domainType)
        let relative = "\(guest.name)-dir"
        let folder = "/var/lib/libvirt/images/\(relative)"
        let fromHere = { (host: Testbed.Name) in "\(host.imagesFromHere)/\(relative)" }
        defer {
            guest.cleanUp()
            for host in Testbed.Name.allCases { try? FileManager.default.removeItem(atPath: fromHere(host)) }
        }
        try FileManager.default.createDirectory(atPath: fromHere(.hosta), withIntermediateDirectories: false)
        #expect(!FileManager.default.fileExists(atPath: fromHere(.hostb)))
        let disk = "\(folder)/disk.qcow2"
        try await boot(guest, disk: disk, diskFromHere: "\(fromHere(.hosta))/disk.qcow2")
        let poolsBefore = try pools()

        let there = try await migrate(guest.name, from: .hosta, to: .hostb, storage: .copy)
        #expect(there.disks.map(\.mode) == ["copy"], "\(there.disks)")
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
        #expect(FileManager.default.fileExists(atPath: "\(fromHere(.hostb))/disk.qcow2"), "the copy on hostb")
        #expect(!FileManager.default.fileExists(atPath: "\(fromHere(.hosta))/disk.qcow2"), "the source's copy removed")
        #expect(try pools() == poolsBefore, "no transient pool left")

        let back = try await migrate(guest.name, from: .hostb, to: .hosta, storage: .auto)
        #expect(back.disks.map(\.mode) == ["copy"], "\(back.disks)")
        #expect(try guest.hosts() == [.hosta])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
        #expect(try pools() == poolsBefore, "no transient pool left")
        #expect(guest.log.boots() == 1, "the guest never rebooted")
        // What the guest wrote at boot is on the disk it now runs from.
        try await Task.sleep(for: .seconds(1))
        #expect(try Integration.markers(inImage: "\(fromHere(.hosta))/disk.qcow2") == ["boot 1 tag=nopool"])
    }
}
