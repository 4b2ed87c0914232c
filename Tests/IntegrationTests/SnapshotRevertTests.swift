import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Reverting the Linux fixture guest to its disk-only snapshots on qemu:///system, which libvirt
/// 9 cannot do itself: what the guest sees after, which files stay, and what a refusal leaves.
@Suite("Reverting to a snapshot on qemu:///system", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct SnapshotRevertTests {
    let host: VMDriver.Host
    let type: String

    init() async throws {
        host = try await Host.connect(Integration.uri)
        type = try #require(try await host.capabilities().linuxDomainType)
    }

    /// Boots the guest, which adds "boot N tag=T" to the markers on its disk, and shuts it down.
    func bootOnce(_ vm: VirtualMachine, _ sandbox: Sandbox, expecting markers: [String]) async throws {
        try await vm.start()
        #expect(await sandbox.waitFor(90) { sandbox.markersSeenByGuest() == markers }, "\(sandbox.serialLines().suffix(8))")
        #expect(try await vm.shutdown(timeout: .seconds(60)).wait() == .shutOff)
    }

    /// Changes the tag the guest writes in its markers, so one boot can be told from another.
    func retag(_ vm: VirtualMachine, from old: String, to new: String) throws {
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: vm.name)
        let xml = try domain.xmlDescription([.inactive]).replacingOccurrences(
            of: "vmdriver.tag=\(old)", with: "vmdriver.tag=\(new)")
        _ = try connection.defineDomain(xml: xml)
    }

    /// Two snapshots, one boot after each; back to the first: the guest sees only what was on
    /// disk at that moment, the overlay it wrote to since is deleted, the one the second snapshot
    /// froze is kept. Then `vmctl snapshot revert` to the second: the guest sees that moment.
    @Test func revertDiscardsTheWritesSinceAndKeepsWhatOtherSnapshotsFroze() async throws {
        let sandbox = try Sandbox("revert")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let vm = try await host.open(try sandbox.writeLinuxXML(domainType: type, tag: "src"))
        try await bootOnce(vm, sandbox, expecting: ["boot 1 tag=src"])
        let one = try #require(try await vm.createSnapshot(name: "one").disks.first)
        try await bootOnce(vm, sandbox, expecting: ["boot 1 tag=src", "boot 2 tag=src"])
        let two = try #require(try await vm.createSnapshot(name: "two").disks.first)
        #expect(two.frozenImage == one.overlay)
        try await bootOnce(vm, sandbox, expecting: ["boot 1 tag=src", "boot 2 tag=src", "boot 3 tag=src"])

        // libvirt, asked directly, refuses: this is what VMDriver does in its place.
        let raw = #expect(throws: ToolFailed.self) {
            try run("virsh", ["-c", Integration.uri, "snapshot-revert", vm.name, "one"])
        }
        #expect(raw?.stderr.contains("revert to external snapshot not supported yet") == true, "\(raw?.stderr ?? "")")

        let back = try await vm.revert(toSnapshot: "one")
        #expect(back.discarded == [two.overlay], "what boot 3 wrote is deleted")
        #expect(back.leftOver == [])
        #expect(FileManager.default.fileExists(atPath: one.overlay), "snapshot 'two' froze it")
        #expect(try await vm.state() == .shutOff)
        let disk = try #require(try await vm.details().disks.first)
        #expect(disk.path == back.snapshot.disks.first?.overlay)
        #expect(disk.backingChain?.map(\.path) == [sandbox.disk.path])
        #expect(try await vm.snapshots().filter(\.isCurrent).map(\.name) == ["one"])
        try retag(vm, from: "src", to: "after")
        try await bootOnce(vm, sandbox, expecting: ["boot 1 tag=src", "boot 2 tag=after"])
        // What the snapshots froze never changed.
        #expect(try sandbox.markersOnDisk() == ["boot 1 tag=src"])
        #expect(try sandbox.markersOnDisk(URL(fileURLWithPath: one.overlay)) == ["boot 1 tag=src", "boot 2 tag=src"])

        // The same from the command line, to the second snapshot.
        let cli = try VMCtl.run(["-c", Integration.uri, "snapshot", "revert", vm.name, "two", "--json"])
        #expect(cli.status == 0, "\(cli.stderr)")
        let json = try #require(try cli.json() as? [String: Any])
        #expect(json["discarded"] as? [String] == [disk.path ?? ""])
        let now = try #require(try await vm.details().disks.first)
        #expect(now.backingChain?.map(\.path) == [one.overlay, sandbox.disk.path])
        try await bootOnce(vm, sandbox, expecting: ["boot 1 tag=src", "boot 2 tag=src", "boot 3 tag=after"])
    }

    /// A running VM is code 5, an unknown snapshot code 4, a frozen image that is gone code 5:
    /// each names the problem, and none changes a file, the definition or the VM's state.
    @Test func refusalsChangeNothing() async throws {
        let sandbox = try Sandbox("revert-no")
        defer { sandbox.cleanUp() }
        let vm = try await host.open(try sandbox.writeBootSectorXML(domainType: type))
        _ = try await vm.createSnapshot(name: "s")
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: vm.name)
        func files() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).filter { $0 != "serial.log" }.sorted()
        }
        let definition = try domain.xmlDescription([.inactive])
        let before = try files()

        try await vm.start()
        let running = await #expect(throws: VMDriverError.self) { try await vm.revert(toSnapshot: "s") }
        #expect(running?.code == .invalidState)
        #expect(running?.message.contains("shut it down first") == true, "\(running?.message ?? "")")
        let cli = try VMCtl.run(["-c", Integration.uri, "snapshot", "revert", vm.name, "s"])
        #expect(cli.status == 5, "\(cli.stderr)")
        #expect(try await vm.state() == .running)
        try await vm.destroy()

        let unknown = await #expect(throws: VMDriverError.self) { try await vm.revert(toSnapshot: "never-taken") }
        #expect(unknown?.code == .invalidParameter)
        #expect(unknown?.message.contains("'never-taken'") == true)

        let image = sandbox.directory.appendingPathComponent("boot.img")
        let aside = sandbox.directory.appendingPathComponent("boot.img.aside")
        try FileManager.default.moveItem(at: image, to: aside)
        let gone = await #expect(throws: VMDriverError.self) { try await vm.revert(toSnapshot: "s") }
        #expect(gone?.code == .invalidState, "\(gone.map { String(describing: $0) } ?? "")")
        #expect(gone?.message.contains(image.path) == true, "\(gone?.message ?? "")")
        try FileManager.default.moveItem(at: aside, to: image)

        #expect(try files() == before)
        #expect(try domain.xmlDescription([.inactive]) == definition)
        #expect(try await vm.state() == .shutOff)
    }
}
