import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Guests ready for integration tests: `vmctl start --wait ip|agent|serial:PATTERN` and
/// `vmctl addresses`, on fixture guests whose NIC is on the isolated network scripts/testnet.sh
/// made (the guest asks for an address with busybox udhcpc and says which it got).
@Suite("Guest readiness and addresses", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct GuestReadinessTests {
    static let network = Integration.environment["VMDRIVER_TEST_NETWORK"] ?? "vmdriver-isolated"
    let host: VMDriver.Host
    let type: String

    init() async throws {
        host = try await Host.connect(Integration.uri)
        type = try #require(try await host.capabilities().linuxDomainType)
    }

    /// A shut-off fixture VM in the sandbox, with a virtio NIC on the test network when `nic`;
    /// with `agentChannel`, qemu-guest-agent's virtio-serial channel, and with `agent` the
    /// initramfs that runs Debian's qemu-guest-agent on it.
    func define(_ sandbox: Sandbox, nic: Bool, agentChannel: Bool = false, agent: Bool = false) throws -> String {
        try sandbox.copyDataDisk()
        let path = try sandbox.writeLinuxXML(domainType: type, tag: "ready")
        var xml = try String(contentsOfFile: path, encoding: .utf8)
        var devices = ""
        if nic {
            devices += "<interface type='network'><source network='\(Self.network)'/><model type='virtio'/></interface>"
        }
        if agentChannel {
            devices += "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        }
        xml = xml.replacingOccurrences(of: "<controller type='usb'", with: devices + "<controller type='usb'")
        if agent { xml = xml.replacingOccurrences(of: "initrd.img", with: "initrd-agent.img") }
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        return try connection.defineDomain(xml: try String(contentsOfFile: path, encoding: .utf8)).name()
    }

    /// Whether `name` runs, read without VMDriver.
    func isRunning(_ name: String) throws -> Bool {
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        return try connection.lookupDomain(name: name).isActive()
    }

    /// The addresses a guest's serial log says udhcpc got (`VMDRIVER-IP eth0 ADDRESS`).
    func leasedInside(_ log: SerialLog) -> [String] {
        log.lines().filter { $0.hasPrefix("VMDRIVER-IP ") }.compactMap { $0.split(separator: " ").last.map(String.init) }
    }

    @Test func tenLinkedClonesStartedWithWaitIPGetTenDistinctAddressesThatAnswer() async throws {
        let sandbox = try Sandbox("ready-ten")
        defer { sandbox.cleanUp() }
        let golden = try await host.open(try define(sandbox, nic: true))
        var clones: [String] = []
        for index in 1...10 {
            clones.append(try await golden.clone(name: "\(sandbox.name)-\(index)", type: .linked).wait().name)
        }
        // Ten vmctl processes at once, as a test harness starts its fleet.
        let commands = try clones.map { try VMCtl.Terminal(["start", $0, "--wait", "ip", "--timeout", "180", "--json"]) }
        defer { commands.forEach { $0.cleanUp() } }
        var addresses: [String: String] = [:]
        for (clone, command) in zip(clones, commands) {
            let status = await command.wait(seconds: 240)
            #expect(status == 0, "\(clone): \(command.stderr)")
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(command.stdout.utf8)) as? [String: Any], "\(command.stdout)")
            let ready = try #require(json["ready"] as? [String: Any])
            #expect(ready["condition"] as? String == "ip")
            let interfaces = try #require(ready["interfaces"] as? [[String: Any]])
            let address = try #require((interfaces.first?["addresses"] as? [[String: Any]])?.first?["address"] as? String)
            addresses[clone] = address
        }
        #expect(Set(addresses.values).count == 10, "\(addresses)")
        for (clone, address) in addresses.sorted(by: { $0.key < $1.key }) {
            #expect(address.hasPrefix("192.168.213."), "\(clone): \(address)")
            // What the guest itself says it got, and that it answers there.
            let log = sandbox.log(ofClone: clone)
            #expect(await Integration.waitFor(10) { leasedInside(log).contains(address) }, "\(clone): \(log.lines().suffix(5))")
            #expect(
                (try? run("busybox", ["ping", "-c", "1", "-W", "3", address]))?.contains("1 packets received") == true,
                "\(clone) does not answer at \(address)")
        }
        // vmctl addresses says the same from the leases.
        let first = try #require(clones.first)
        let leases = try VMCtl.run("addresses", first, "--source", "lease", "--json")
        #expect(leases.status == 0, "\(leases.stderr)")
        let list = try #require(try leases.json() as? [[String: Any]])
        #expect(
            (list.first?["addresses"] as? [[String: Any]])?.first?["address"] as? String == addresses[first], "\(leases.stdout)")
        // From the ARP table (the ping filled it) as virsh reads it: where libvirt's ARP reader
        // fails on this kernel (PLATFORM.md), vmctl says so with code 1 while `ip neigh` shows
        // the guest; where it works, the address is the same.
        _ = try? run("busybox", ["ping", "-c", "1", "-W", "3", addresses[first] ?? "?"])
        let virsh = Process()
        virsh.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
        virsh.arguments = ["-c", Integration.uri, "domifaddr", first, "--source", "arp"]
        let (virshOutput, virshErrors) = (Pipe(), Pipe())
        virsh.standardError = virshErrors
        virsh.standardOutput = virshOutput
        try virsh.run()
        let virshLists = String(decoding: virshOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        virsh.waitUntilExit()
        let virshSays = String(decoding: virshErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let arp = try VMCtl.run("addresses", first, "--source", "arp", "--json")
        if virsh.terminationStatus != 0 && virshSays.contains("nlmsg len") {
            #expect(try run("ip", ["neigh", "show"]).contains(addresses[first] ?? "?"), "the kernel's table lacks the guest")
            #expect(arp.status == 1, "\(arp.stderr)")
            #expect(arp.stderr.contains("cannot read this host's ARP table"), "\(arp.stderr)")
        } else {
            // The same table, the same answer: what virsh lists for the guest, vmctl lists.
            #expect(arp.status == 0, "\(arp.stderr)")
            let found = ((try arp.json() as? [[String: Any]])?.first?["addresses"] as? [[String: Any]] ?? [])
                .compactMap { $0["address"] as? String }
            let listed = virshLists.split(whereSeparator: \.isNewline).filter { $0.contains("ipv4") }
                .compactMap { $0.split(separator: " ").last?.split(separator: "/").first.map(String.init) }
            #expect(found == listed, "vmctl: \(arp.stdout); virsh: \(virshLists)")
        }
    }

    @Test func waitAgentReturnsOnceQemuGuestAgentAnswersAndItKnowsTheAddress() async throws {
        let sandbox = try Sandbox("ready-agent")
        defer { sandbox.cleanUp() }
        let name = try define(sandbox, nic: true, agentChannel: true, agent: true)
        let result = try VMCtl.run("start", name, "--wait", "agent", "--timeout", "120", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            sandbox.serialLines().contains { $0.hasPrefix("VMDRIVER-AGENT /dev/vport") }, "\(sandbox.serialLines().suffix(6))")
        // The agent reports the guest's own interface (eth0) with the address the guest leased.
        let log = sandbox.log
        #expect(await Integration.waitFor(60) { !leasedInside(log).isEmpty }, "\(log.lines().suffix(6))")
        var found: [String: Any]?
        let answered = await Integration.waitFor(30) {
            guard let run = try? VMCtl.run("addresses", name, "--source", "agent", "--json"), run.status == 0,
                let list = try? run.json() as? [[String: Any]], let first = list.first,
                (first["addresses"] as? [[String: Any]])?.isEmpty == false
            else { return false }
            found = first
            return true
        }
        #expect(answered)
        #expect(found?["name"] as? String == "eth0")
        #expect(found?["source"] as? String == "agent")
        #expect(
            ((found?["addresses"] as? [[String: Any]])?.first?["address"] as? String).map { leasedInside(log).contains($0) }
                == true)
    }

    @Test func aChannelWithNoAgentBehindItTimesOutWithTheVMRunning() async throws {
        let sandbox = try Sandbox("ready-noagent")
        defer { sandbox.cleanUp() }
        // The channel is there; the guest (the plain initramfs) runs no agent on it.
        let name = try define(sandbox, nic: false, agentChannel: true)
        let result = try VMCtl.run("start", name, "--wait", "agent", "--timeout", "8")
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("left running"), "\(result.stderr)")
        #expect(try isRunning(name))
    }

    @Test func conditionsTheVMCannotShowAreCode1BeforeItStarts() async throws {
        let sandbox = try Sandbox("ready-none")
        defer { sandbox.cleanUp() }
        let name = try define(sandbox, nic: false)
        for (condition, says) in [("ip", "no network interface"), ("agent", "no qemu-guest-agent channel")] {
            let started = ContinuousClock.now
            let result = try VMCtl.run("start", name, "--wait", condition)
            #expect(result.status == 1, "\(condition): \(result.stderr)")
            #expect(result.stderr.contains(says), "\(condition): \(result.stderr)")
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(try !isRunning(name), "--wait \(condition) started the VM anyway")
        }
        let bad = try VMCtl.run("start", name, "--wait", "serial:([unclosed")
        #expect(bad.status == 4, "\(bad.stderr)")
        #expect(try !isRunning(name))
        let unknown = try VMCtl.run("start", name, "--wait", "ssh")
        #expect(unknown.status == 4, "\(unknown.stderr)")
        #expect(try !isRunning(name))
    }

    @Test func serialWaitsSeeOnlyThisBootAndTimeOutWithTheVMRunning() async throws {
        let sandbox = try Sandbox("ready-serial")
        defer { sandbox.cleanUp() }
        let name = try define(sandbox, nic: false)
        let first = try VMCtl.run("start", name, "--wait", "serial:^VMDRIVER-HEARTBEAT 2$", "--json")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(
            (try first.json() as? [String: Any]).flatMap { $0["ready"] as? [String: Any] }?["line"] as? String
                == "VMDRIVER-HEARTBEAT 2")
        #expect(sandbox.heartbeats().count >= 2)
        let vm = try await host.open(name)
        #expect(try await vm.shutdown(timeout: .seconds(60)).wait() == .shutOff)
        #expect(sandbox.serialLines().contains("VMDRIVER-POWEROFF"))

        // The last boot said VMDRIVER-POWEROFF; this one will not before it is shut down: the
        // wait times out (3) and the VM keeps running.
        let second = try VMCtl.run("start", name, "--wait", "serial:VMDRIVER-POWEROFF", "--timeout", "6")
        #expect(second.status == 3, "\(second.stderr)")
        #expect(second.stderr.contains("left running"), "\(second.stderr)")
        #expect(try isRunning(name))
        #expect(sandbox.log.boots() == 2)
    }

    @Test func ctrlCStopsTheWaitAndLeavesTheVMRunning() async throws {
        let sandbox = try Sandbox("ready-int")
        defer { sandbox.cleanUp() }
        let name = try define(sandbox, nic: false)
        let command = try VMCtl.Terminal(["start", name, "--wait", "serial:NEVER-PRINTED", "--timeout", "120"])
        defer { command.cleanUp() }
        #expect(await Integration.waitFor(30) { sandbox.heartbeats().count >= 1 })
        command.interrupt()
        let status = await command.wait(seconds: 10)
        #expect(status == 2, "\(command.stderr)")
        #expect(command.stderr.contains("cancelled") && command.stderr.contains("running"), "\(command.stderr)")
        #expect(try isRunning(name))
        let beats = sandbox.heartbeats().count
        #expect(await Integration.waitFor(10) { sandbox.heartbeats().count > beats }, "the guest stopped")
    }
}
