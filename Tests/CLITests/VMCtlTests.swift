import Foundation
import Testing
import VMDriverTestSupport

@Suite("vmctl on test:///default")
struct VMCtlTestDriverTests {
    @Test func openPrintsTheTestDriversVMAsJSON() throws {
        let output = try VMCtl.run("--connect", "test:///default", "open", "test", "--json")
        #expect(output.status == 0, "\(output.stderr)")
        let vm = try #require(try output.json() as? [String: Any])
        #expect(vm["name"] as? String == "test")
        #expect(vm["state"] as? String == "running")
        #expect(vm["uuid"] as? String == "6695eb01-f6a4-8304-79aa-97f2502e193f")
        #expect(vm["vcpus"] as? Int == 2)
        #expect(vm["origin"] as? String == "registered")
        #expect((vm["nics"] as? [[String: Any]])?.first?["mac"] as? String == "aa:bb:cc:dd:ee:ff")
        #expect(output.stderr.isEmpty)
    }

    @Test func connectMayFollowTheSubcommand() throws {
        let output = try VMCtl.run("open", "test", "-c", "test:///default")
        #expect(output.status == 0)
        #expect(output.stdout.contains("Name:        test"))
        #expect(output.stdout.contains("State:       running"))
    }

    @Test func aMissingVMExits4WithTheMessageOnStderr() throws {
        let output = try VMCtl.run("-c", "test:///default", "open", "no-such-vm")
        #expect(output.status == 4)
        #expect(output.stdout.isEmpty)
        #expect(output.stderr.contains("no VM named 'no-such-vm' on host"))
        #expect(output.stderr.contains("code 4"))
    }

    @Test func aBrokenXMLFileExits4() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("broken.xml")
        try "<domain type='test'><name>broken</name".write(to: file, atomically: true, encoding: .utf8)
        let output = try VMCtl.run("-c", "test:///default", "open", file.path)
        #expect(output.status == 4)
        #expect(output.stderr.contains("\(file.path) is not well-formed XML"))
    }

    @Test func capsOfTheTestDriverListNoMigrationTypes() throws {
        let output = try VMCtl.run("-c", "test:///default", "caps", "--json")
        #expect(output.status == 0)
        let caps = try #require(try output.json() as? [String: Any])
        #expect(caps["driver"] as? String == "test")
        let types = try #require(caps["migrationTypes"] as? [String: [String: Any]])
        #expect(Set(types.keys) == ["hot", "warm", "cold"])
        #expect(types.values.allSatisfy { $0["status"] as? String == "unavailable" })
    }

    @Test func wrongStateExits5() throws {
        // In one process: the test driver's state lives only as long as the process.
        let output = try VMCtl.run("-c", "test:///default", "resume", "test")
        #expect(output.status == 5)
        #expect(output.stderr.contains("cannot resume VM 'test'"))
        #expect(output.stderr.contains("not paused"))
    }

    /// The lifecycle commands print their result as JSON too: the VM and the state it is in.
    @Test func lifecycleCommandsPrintJSON() throws {
        // The test driver's state lives only as long as the process: each call starts from
        // its running 'test' domain.
        let suspended = try VMCtl.run("-c", "test:///default", "suspend", "test", "--json")
        #expect(suspended.status == 0, "\(suspended.stderr)")
        let json = try #require(try suspended.json() as? [String: Any])
        #expect(json["vm"] as? String == "test")
        #expect(json["state"] as? String == "paused")
        #expect((json["uuid"] as? String).flatMap(UUID.init(uuidString:)) != nil)
        let destroyed = try #require(try VMCtl.run("-c", "test:///default", "destroy", "test", "--json").json() as? [String: Any])
        #expect(destroyed["state"] as? String == "shut off")
    }

    /// `migrate --help` sorts its options under titles, not one list of twenty.
    @Test func migrateHelpGroupsItsOptions() throws {
        let help = try VMCtl.run("migrate", "--help")
        #expect(help.status == 0)
        let titles = ["WHAT KIND OF MOVE:", "THE VM ON THE TARGET:", "TUNING THE TRANSFER:"]
        let found = titles.compactMap { help.stdout.range(of: $0)?.lowerBound }
        #expect(found.count == 3 && found == found.sorted(), "\(help.stdout)")
        // Each option under its title.
        let tuning = help.stdout.components(separatedBy: "TUNING THE TRANSFER:").last ?? ""
        #expect(tuning.contains("--bandwidth") && !tuning.contains("--home"))
    }

    @Test func anUnknownOptionExits4AndHelpExits0() throws {
        let unknown = try VMCtl.run("open", "test", "--no-such-option")
        #expect(unknown.status == 4)
        #expect(unknown.stderr.contains("--no-such-option"))
        let help = try VMCtl.run("--help")
        #expect(help.status == 0)
        #expect(help.stdout.contains("caps"))
    }

    @Test func listJSON() throws {
        let output = try VMCtl.run("-c", "test:///default", "list", "--all", "--json")
        #expect(output.status == 0)
        let rows = try #require(try output.json() as? [[String: Any]])
        #expect(rows.map { $0["name"] as? String } == ["test"])
    }

    @Test func badArgumentsExit4() throws {
        let output = try VMCtl.run("shutdown", "test", "--timeout=-1", "-c", "test:///default")
        #expect(output.status == 4)
        #expect(output.stderr.contains("--timeout must be a positive number"))
    }

    @Test func migrateRefusesBadInputWithTheRightCode() throws {
        // A destination in no accepted format: code 4, the formats named.
        let bad = try VMCtl.run("-c", "test:///default", "migrate", "test", "not a host")
        #expect(bad.status == 4)
        #expect(bad.stderr.contains("IPv6"), "\(bad.stderr)")
        // Options that cannot be: code 4 before anything is asked of a host.
        #expect(try VMCtl.run("-c", "test:///default", "migrate", "test", "10.0.0.9", "--parallel", "0").status == 4)
        #expect(try VMCtl.run("-c", "test:///default", "migrate", "test", "10.0.0.9", "--type", "lukewarm").status == 4)
        // The test driver migrates nothing: code 1, said so.
        let driver = try VMCtl.run("-c", "test:///default", "migrate", "test", "10.0.0.9", "--check")
        #expect(driver.status == 1, "\(driver.stderr)")
        #expect(driver.stderr.contains("does not migrate"), "\(driver.stderr)")
    }
}

@Suite(
    "vmctl on qemu:///system", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["VMDRIVER_INTEGRATION"] == "1", "needs scripts/test.sh"))
struct VMCtlSystemTests {
    @Test func openNoSuchVMOnTheDefaultHostExits4() throws {
        let output = try VMCtl.run("open", "no-such-vm")
        #expect(output.status == 4)
        #expect(output.stderr.contains("no VM named 'no-such-vm'"))
    }

    @Test func aBrokenXMLFileDefinesNothing() throws {
        #expect(try VMCtl.run("open", "vmctl-broken").status == 4)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, text) in [
            "<domain type='qemu'><name>vmctl-broken</name",
            // Well-formed, but libvirt refuses it (no memory, no OS).
            "<domain type='qemu'><name>vmctl-broken</name><vcpu>1</vcpu></domain>",
        ].enumerated() {
            let file = directory.appendingPathComponent("broken\(index).xml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let output = try VMCtl.run("open", file.path)
            #expect(output.status == 4, "\(output.stderr)")
            #expect(output.stderr.contains(file.path))
        }
        // Nothing of that name was registered, not even half-way.
        let after = try VMCtl.run("list", "--all", "--json")
        #expect(after.status == 0)
        #expect(!after.stdout.contains("vmctl-broken"))
        #expect(try VMCtl.run("open", "vmctl-broken").status == 4)
    }

    @Test func capsReportsQEMUWithTCGWorking() throws {
        let output = try VMCtl.run("caps", "--json")
        #expect(output.status == 0, "\(output.stderr)")
        let caps = try #require(try output.json() as? [String: Any])
        #expect(caps["driver"] as? String == "qemu")
        let accelerators = try #require(caps["accelerators"] as? [[String: Any]])
        let tcg = try #require(accelerators.first { $0["name"] as? String == "tcg" })
        #expect((tcg["runsLinuxGuests"] as? [String: Any])?["status"] as? String == "available")
        let types = try #require(caps["migrationTypes"] as? [String: [String: Any]])
        #expect(types.values.allSatisfy { $0["status"] as? String == "available" })
    }
}

@Suite(
    "vmctl clone, delete, promote, snapshot on qemu:///system", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["VMDRIVER_INTEGRATION"] == "1", "needs scripts/test.sh"))
struct VMCtlCloneTests {
    @Test func theCloneLifecycleThroughTheCLI() throws {
        let tag = UUID().uuidString.prefix(6).lowercased()
        let parent = "vmdriver-test-cli-\(tag)"
        let clone = "\(parent)-c"
        let directory = URL(fileURLWithPath: "/var/lib/libvirt/images/\(parent)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            for name in [clone, parent] { _ = try? VMCtl.run("delete", name, "--with-storage", "--force") }
            try? FileManager.default.removeItem(at: directory)
        }
        let disk = directory.appendingPathComponent("disk.qcow2").path
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        make.arguments = ["create", "-q", "-f", "qcow2", disk, "16M"]
        try make.run()
        make.waitUntilExit()
        let xml = directory.appendingPathComponent("parent.xml")
        try """
        <domain type='qemu'><name>\(parent)</name><memory unit='MiB'>32</memory>
        <os><type arch='x86_64'>hvm</type></os>
        <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='\(disk)'/><target dev='vda' bus='virtio'/></disk></devices>
        </domain>
        """.write(to: xml, atomically: true, encoding: .utf8)
        #expect(try VMCtl.run("open", xml.path).status == 0)

        let made = try VMCtl.run("clone", parent, clone, "--linked", "--json")
        #expect(made.status == 0, "\(made.stderr)")
        let result = try #require(try made.json() as? [String: Any])
        #expect(result["type"] as? String == "linked")
        let cloneDisks = try #require((result["clone"] as? [String: Any])?["disks"] as? [[String: Any]])
        #expect((cloneDisks.first?["backingChain"] as? [[String: Any]])?.first?["path"] as? String == disk)

        #expect(try VMCtl.run("clones", parent).stdout == "\(clone)\n")
        let again = try VMCtl.run("clone", parent, clone, "--linked")
        #expect(again.status == 4)
        #expect(again.stderr.contains("already exists"))
        let refused = try VMCtl.run("delete", parent)
        #expect(refused.status == 5)
        #expect(refused.stderr.contains(clone))

        #expect(try VMCtl.run("promote", clone).status == 0)
        #expect(try VMCtl.run("clones", parent).stdout.isEmpty)
        let deleted = try VMCtl.run("delete", parent, "--with-storage")
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: disk))

        #expect(try VMCtl.run("snapshot", "create", clone, "s1").status == 0)
        let list = try VMCtl.run("snapshot", "list", clone, "--json")
        let snapshots = try #require(try list.json() as? [[String: Any]])
        #expect(snapshots.map { $0["name"] as? String } == ["s1"])
        #expect(try VMCtl.run("snapshot", "delete", clone, "s1").status == 0)
        #expect(try VMCtl.run("snapshot", "delete", clone, "s1").status == 4)
    }
}
