import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

/// Ctrl-C on the long vmctl commands, sent as a terminal sends it. The job is cancelled, what
/// VMDriver made is rolled back, vmctl exits 2 saying where the VM is.
@Suite("Ctrl-C on vmctl", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct InterruptTests {
    /// Mid-copy (a 2 MiB/s cap keeps the disk and memory in flight): vmctl exits 2 within a few
    /// seconds; the source runs with no libvirt job; the target holds no domain, no QEMU and no
    /// image VMDriver made; the same migration then succeeds and the guest never rebooted.
    @Test(.enabled(if: Testbed.enabled, "needs the testbed"))
    func ctrlCOnMigrateAbortsTheJobAndCleansTheTarget() async throws {
        let local = try await Host.connect(Integration.uri)
        let domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
        let guest = TestbedGuest("sigint", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=32")
        let targetImage = guest.diskFromHere(on: .hostb)
        #expect(!FileManager.default.fileExists(atPath: targetImage))

        let command = try VMCtl.Terminal([
            "-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--storage", "copy",
            "--bandwidth", "2", "--policy", "plain",
        ])
        defer { command.cleanUp() }
        // In flight: the source has a migration job that has moved data, the target an
        // incoming domain and the image VMDriver made for the disk.
        let source = try Testbed.connection(.hosta)
        defer { try? source.close() }
        let domain = try source.lookupDomain(name: guest.name)
        let moving = await Integration.waitFor(60) {
            guard let stats = try? domain.jobStats(), stats.type != .none else { return false }
            return (stats.dataProcessed ?? 0) > 1 << 20
        }
        try #require(moving, "the migration never got going: \(command.stderr)")
        #expect(try guest.state(on: .hostb) != nil, "an incoming domain on hostb while it moves")
        #expect(FileManager.default.fileExists(atPath: targetImage), "the image VMDriver made on hostb")
        let beats = guest.log.heartbeats().count

        command.interrupt()
        let status = await command.wait(seconds: 15)
        #expect(status == 2, "vmctl exits 2 after Ctrl-C: \(command.stderr)")
        #expect(command.stderr.contains("cancel"), "\(command.stderr)")
        #expect(command.stderr.contains("running on host 'hosta'"), "says where the VM is: \(command.stderr)")

        // The source: running, no libvirt job left.
        #expect(try domain.state().state == .running)
        #expect(try domain.jobStats().type == Domain.JobType.none, "no migration job left on hosta")
        // The target: no domain, no QEMU of the guest, no image.
        #expect(try guest.state(on: .hostb) == nil, "no domain left on hostb")
        #expect(await Integration.waitFor(10) { Testbed.qemuProcesses(named: guest.name) == 1 }, "only hosta's QEMU")
        #expect(!FileManager.default.fileExists(atPath: targetImage), "the image VMDriver made on hostb is gone")
        #expect(await guest.keepsBeating(after: beats), "the guest runs on, unrebooted, on hosta")

        // The same migration then succeeds.
        let again = try VMCtl.run(["-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
        #expect(guest.log.boots() == 1, "the guest never rebooted")
    }

    /// Ctrl-C while a full clone's data disk is being copied: exit 2, nothing of the clone left
    /// (no file, no definition), no copy process left, the source untouched.
    @Test func ctrlCOnAFullCloneRemovesWhatItMade() async throws {
        let sandbox = try Sandbox("sigint-clone")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let source = try await host.open(path)
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let sum = try run("sha256sum", [big.path])
        let clone = "\(sandbox.name)-c"

        let command = try await VMCtl.Terminal.fullClone(of: source.name, as: clone, copying: big)
        defer { command.cleanUp() }
        command.interrupt()
        let status = await command.wait(seconds: 15)
        #expect(status == 2, "vmctl exits 2 after Ctrl-C: \(command.stderr)")
        #expect(command.stderr.contains("cancel"), "\(command.stderr)")
        #expect(copyProcesses(reading: big.path).isEmpty, "the copy process is gone")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == files)
        await #expect(throws: VMDriverError.self, "no definition of the clone") { try await host.open(clone) }
        #expect(try run("sha256sum", [big.path]) == sum)
    }

    /// Ctrl-C (SIGINT to the group) or `kill PID` from another shell (SIGTERM to vmctl alone)
    /// while vmctl waits for a guest that ignores the power button (the boot-sector guest has
    /// no ACPI): exit 2; nothing is rolled back, which vmctl says, with the state.
    @Test(arguments: [SIGINT, SIGTERM])
    func ctrlCOnShutdownSaysThePowerButtonWasPressedAndTheState(signal: Int32) async throws {
        let sandbox = try Sandbox("sigint-shutdown")
        defer { sandbox.cleanUp() }
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(try sandbox.writeBootSectorXML(domainType: "qemu"))
        try await vm.start()
        let command = try VMCtl.Terminal(["-c", Integration.uri, "shutdown", vm.name, "--timeout", "120"])
        defer { command.cleanUp() }
        try await Task.sleep(for: .seconds(2))
        let early = await command.wait(seconds: 0)
        #expect(early == nil, "still waiting for the guest: \(command.stderr)")
        if signal == SIGINT { command.interrupt() } else { kill(command.pid, SIGTERM) }
        let status = await command.wait(seconds: 10)
        #expect(status == 2, "\(command.stderr)")
        #expect(command.stderr.contains("power button"), "\(command.stderr)")
        #expect(command.stderr.contains("the VM is running"), "\(command.stderr)")
        #expect(try await vm.state() == .running)
    }
}
