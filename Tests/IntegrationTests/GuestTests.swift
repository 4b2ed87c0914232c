import Foundation
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Real guests on a real libvirtd (qemu:///system): the Linux fixture under the accelerator the
/// capability probe picked, and the boot-sector guest.
@Suite("Real guests on qemu:///system", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct GuestTests {
    let host: VMDriver.Host
    let caps: Capabilities

    init() async throws {
        host = try await Host.connect(Integration.uri)
        caps = try await host.capabilities()
    }

    /// The probe itself, not the cached answer: booting it is what the test is about.
    @Test func theAcceleratorProbeBootsAndJudges() async throws {
        let fresh = try await host.capabilities(refresh: true)
        let tcg = try #require(fresh.accelerators.first { $0.name == "tcg" })
        #expect(tcg.runsLinuxGuests.isAvailable, "\(tcg.runsLinuxGuests)")
        #expect(tcg.runsLinuxGuests.reason?.contains("cmpxchg16b") == true)
        // Whatever KVM can do here, the answer is a verdict with a reason, never a guess.
        let kvm = try #require(fresh.accelerators.first { $0.name == "kvm" })
        #expect(kvm.runsLinuxGuests.status != .unknown)
        #expect(kvm.runsLinuxGuests.reason?.isEmpty == false)
        // A cached answer gives the same verdicts as a fresh probe (the timings in reasons vary).
        #expect(
            fresh.accelerators.map { [$0.runsGuests.status, $0.runsLinuxGuests.status] }
                == caps.accelerators.map { [$0.runsGuests.status, $0.runsLinuxGuests.status] })
    }

    var linuxType: String {
        get throws { try #require(caps.linuxDomainType, "the probe found no accelerator that runs Linux guests") }
    }

    @Test func capabilitiesComeFromTheHost() throws {
        #expect(caps.driver == "qemu")
        #expect(caps.hypervisor == "QEMU")
        let tcg = try #require(caps.accelerators.first { $0.name == "tcg" })
        #expect(tcg.offered)
        #expect(tcg.runsGuests.isAvailable)
        #expect(tcg.runsLinuxGuests.isAvailable, "\(tcg.runsLinuxGuests)")
        // The recommended type is one the probe saw reach long mode.
        let chosen = try #require(caps.accelerators.first { $0.domainType == caps.linuxDomainType })
        #expect(chosen.runsLinuxGuests.isAvailable)
        for type in Capabilities.MigrationType.concrete { #expect(caps.migrationTypes[type]?.isAvailable == true) }
        #expect(caps.destinationHostFormats.count == 4)
        #expect(caps.cloneTypes[.linked]?.isAvailable == true)
        // Postcopy follows the kernel setting, whichever it is on this machine.
        let sysctl = try String(contentsOfFile: "/proc/sys/vm/unprivileged_userfaultfd", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(caps.features[.postcopy]?.isAvailable == (sysctl == "1"))
    }

    /// The whole open story on the Linux guest: register from a file, boot, heartbeat, marker on
    /// disk, pause and resume without a restart, clean ACPI shutdown, second boot.
    @Test func linuxGuestRunsAndKeepsItsData() async throws {
        let sandbox = try Sandbox("linux")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let type = try linuxType
        let path = try sandbox.writeLinuxXML(domainType: type, tag: "first")

        let vm = try await host.open(path)
        #expect(vm.origin == .defined)
        let defined = try await vm.details()
        #expect(defined.state == .shutOff)
        #expect(defined.persistent)
        #expect(defined.domainType == type)
        #expect(defined.vcpus == 1)
        #expect(defined.maxMemoryMiB == 256)
        let disk = try #require(defined.disks.first)
        #expect(disk.path == sandbox.disk.path)
        #expect(disk.format == "qcow2")
        #expect(disk.backingChain == [])
        // Opening the same file again finds the registered VM.
        #expect(try await host.open(path).origin == .registered)
        #expect(try await host.open(vm.uuid.uuidString).name == sandbox.name)

        try await vm.start()
        #expect(await sandbox.waitFor(60) { sandbox.heartbeats().count >= 2 }, "no heartbeat: \(sandbox.serialLines().suffix(5))")
        #expect(sandbox.markersSeenByGuest() == ["boot 1 tag=first"])
        #expect(try await vm.details().state == .running)

        // Paused: the heartbeat stops; resumed: it goes on from where it was, no reboot.
        try await vm.suspend()
        #expect(try await vm.state() == .paused)
        let atPause = sandbox.heartbeats().last ?? 0
        try await Task.sleep(for: .seconds(2))
        #expect((sandbox.heartbeats().last ?? 0) <= atPause + 1)
        try await vm.resume()
        #expect(await sandbox.waitFor(20) { (sandbox.heartbeats().last ?? 0) > atPause + 1 })
        let beats = sandbox.heartbeats()
        #expect(beats == Array(1...beats.count), "the heartbeat restarted or skipped: \(beats)")

        let job = try await vm.shutdown(timeout: .seconds(60))
        #expect(try await job.wait() == .shutOff)
        #expect(job.state == .completed)
        #expect(sandbox.serialLines().contains("VMDRIVER-POWEROFF"))
        #expect(try sandbox.markersOnDisk() == ["boot 1 tag=first"])

        try await vm.start()
        #expect(await sandbox.waitFor(60) { sandbox.markersSeenByGuest()?.count == 2 })
        #expect(sandbox.markersSeenByGuest() == ["boot 1 tag=first", "boot 2 tag=first"])
        try await vm.destroy()
        #expect(try await vm.state() == .shutOff)
        #expect(try sandbox.markersOnDisk() == ["boot 1 tag=first", "boot 2 tag=first"])
    }

    /// A disk that is a qcow2 overlay reports its backing chain as read from the image headers.
    @Test func backingChainIsReadFromTheImage() async throws {
        let sandbox = try Sandbox("chain")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let overlay = sandbox.directory.appendingPathComponent("overlay.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", sandbox.disk.path, overlay.path])
        let vm = try await host.open(try sandbox.writeLinuxXML(domainType: try linuxType, tag: "chain", disk: overlay))
        let disk = try #require(try await vm.details().disks.first)
        #expect(disk.path == overlay.path)
        #expect(disk.format == "qcow2")
        #expect(disk.backingChain == [VMDetails.BackingImage(path: sandbox.disk.path, format: "qcow2")])
        // The guest boots on the overlay and sees the base's content; its write stays in the overlay.
        try await vm.start()
        #expect(await sandbox.waitFor(60) { sandbox.markersSeenByGuest() != nil })
        #expect(sandbox.markersSeenByGuest() == ["boot 1 tag=chain"])
        // While it runs, the chain is still readable (no image lock taken).
        #expect(try await vm.details().disks.first?.backingChain?.count == 1)
        try await vm.destroy()
        #expect(try sandbox.markersOnDisk() == [])
        #expect(try sandbox.markersOnDisk(overlay) == ["boot 1 tag=chain"])
    }

    /// The boot-sector guest ignores ACPI: the shutdown job's deadline gives code 3 and says the
    /// VM still runs; with force it is destroyed at the deadline.
    @Test func shutdownOfAGuestThatIgnoresACPITimesOut() async throws {
        let sandbox = try Sandbox("acpi")
        defer { sandbox.cleanUp() }
        let kvm = caps.accelerators.first { $0.name == "kvm" }?.runsGuests.isAvailable == true
        let vm = try await host.open(try sandbox.writeBootSectorXML(domainType: kvm ? "kvm" : "qemu"))
        try await vm.start()
        #expect(await sandbox.waitFor(20) { sandbox.serialLines().contains { $0.hasPrefix("tick") } })

        let job = try await vm.shutdown(timeout: .seconds(2))
        // A caller's own shorter wait also reports code 3 and where the VM is, leaving the job running.
        let early = await #expect(throws: VMDriverError.self) { try await job.wait(timeout: .milliseconds(200)) }
        #expect(early?.code == .timeout)
        #expect(early?.message.contains("the VM is running") == true)
        let error = await #expect(throws: VMDriverError.self) { try await job.wait() }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("is still running") == true)
        #expect(job.state == .failed)
        #expect(try await vm.state() == .running)

        let forced = try await vm.shutdown(timeout: .seconds(1), force: true)
        #expect(try await forced.wait() == .shutOff)
    }

    @Test func transientOpenStartsWithoutRegistering() async throws {
        let sandbox = try Sandbox("transient")
        defer { sandbox.cleanUp() }
        let vm = try await host.open(try sandbox.writeBootSectorXML(domainType: "qemu"), transient: true)
        #expect(vm.origin == .startedTransient)
        let details = try await vm.details()
        #expect(details.state == .running)
        #expect(!details.persistent)
        #expect(await sandbox.waitFor(20) { sandbox.serialLines().contains { $0.hasPrefix("tick") } })
        try await vm.destroy()
        let gone = await #expect(throws: VMDriverError.self) { try await host.open(sandbox.name) }
        #expect(gone?.code == .invalidParameter)
    }
}
