import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Clones that are new machines inside: `vmctl clone --hostname` gives each clone a NoCloud
/// seed on a CD-ROM, and what the fixture guest reads from it at boot (its iso9660 driver, as
/// cloud-init would) is checked from its serial log: a new instance-id per clone, the hostname
/// given, the SSH keys.
@Suite("Clone identity (NoCloud seed, sysprep)", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct CloneIdentityTests {
    let host: VMDriver.Host
    let type: String

    init() async throws {
        host = try await Host.connect(Integration.uri)
        type = try #require(try await host.capabilities().linuxDomainType)
    }

    /// A golden VM in the sandbox, booted once and shut off.
    func golden(_ sandbox: Sandbox) async throws -> VirtualMachine {
        try sandbox.copyDataDisk()
        let vm = try await host.open(try sandbox.writeLinuxXML(domainType: type, tag: "gold"))
        try await vm.start()
        #expect(await sandbox.waitFor(60) { sandbox.markersSeenByGuest() == ["boot 1 tag=gold"] })
        #expect(try await vm.shutdown(timeout: .seconds(60)).wait() == .shutOff)
        return vm
    }

    /// What a clone's guest read from its seed: the `VMDRIVER-SEED` lines, the files and the
    /// hostname it took.
    struct SeenInside {
        var metaData: [String]
        var files: [String]
        var hostname: String?

        init(_ log: SerialLog) {
            let lines = log.lines()
            metaData = lines.filter { $0.hasPrefix("VMDRIVER-SEED ") }.map { String($0.dropFirst("VMDRIVER-SEED ".count)) }
            files =
                lines.last { $0.hasPrefix("VMDRIVER-SEED-FILES") }?.split(separator: " ").dropFirst().map(String.init) ?? []
            hostname = lines.last { $0.hasPrefix("VMDRIVER-HOSTNAME ") }.map { String($0.dropFirst("VMDRIVER-HOSTNAME ".count)) }
        }

        func value(_ key: String) -> String? {
            metaData.first { $0.hasPrefix("\(key):") }.map { $0.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces) }
        }
    }

    /// The UUID libvirt has for `name`, read without VMDriver.
    func uuid(of name: String) throws -> String {
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        return try connection.lookupDomain(name: name).uuid().uuidString.lowercased()
    }

    @Test func twoClonesWithHostnamesBootAsTwoNewMachines() async throws {
        let sandbox = try Sandbox("ident")
        defer { sandbox.cleanUp() }
        let source = try await golden(sandbox)
        let key = sandbox.directory.appendingPathComponent("id_ed25519")
        try run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "tester@vmdriver", "-f", key.path])
        let userData = sandbox.directory.appendingPathComponent("user-data")
        try "#cloud-config\npackages: [curl]\n".write(to: userData, atomically: true, encoding: .utf8)

        let first = "\(sandbox.name)-a"
        let second = "\(sandbox.name)-b"
        let made = [
            try VMCtl.run(
                "clone", source.name, first, "--linked", "--hostname", "web-01", "--ssh-key", key.path + ".pub", "--start"),
            try VMCtl.run(
                "clone", source.name, second, "--linked", "--hostname", "web-02.example.test", "--user-data",
                userData.path, "--start"),
        ]
        for result in made { #expect(result.status == 0, "\(result.stderr)") }

        let logs = [sandbox.log(ofClone: first), sandbox.log(ofClone: second)]
        for (name, log) in zip([first, second], logs) {
            #expect(await Integration.waitFor(90) { SeenInside(log).hostname != nil }, "\(name) printed \(log.lines().suffix(8))")
        }
        let seen = logs.map(SeenInside.init)
        // Each guest read a new instance-id, its clone's own (made of its UUID), and took the
        // hostname given.
        #expect(seen[0].value("instance-id") == "iid-\(try uuid(of: first))")
        #expect(seen[1].value("instance-id") == "iid-\(try uuid(of: second))")
        #expect(seen[0].value("instance-id") != seen[1].value("instance-id"))
        #expect(seen.map(\.hostname) == ["web-01", "web-02.example.test"])
        // The key reached the first seed's public-keys; the second seed carries the user-data.
        let publicKey = try String(contentsOf: key.appendingPathExtension("pub"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(
            seen[0].metaData.map { $0.trimmingCharacters(in: .whitespaces) }.contains("- \"\(publicKey)\""), "\(seen[0].metaData)"
        )
        #expect(seen[1].value("public-keys") == nil)
        #expect(Set(seen[1].files) == ["meta-data", "user-data"], "\(seen[1].files)")
        // The guests go on running: the seed is a read-only CD-ROM beside their disks.
        #expect(await Integration.waitFor(20) { logs.allSatisfy { $0.heartbeats().count >= 3 } })

        // A clone of a seeded clone, made without identity options, is not given its parent's.
        let clone = try await host.open(first)
        try await clone.destroy()
        let third = try await clone.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        let thirdXML = try DomainXML(
            parsing: try Connection(uri: Integration.uri).lookupDomain(name: third.name).xmlDescription(), origin: "c")
        #expect(!thirdXML.disks.contains { $0.device == "cdrom" }, "\(thirdXML.disks.map(\.path))")

        // Deleting with storage removes the seed with the disks.
        let seed = sandbox.directory.appendingPathComponent("\(second)-cidata.iso").path
        #expect(FileManager.default.fileExists(atPath: seed))
        let secondVM = try await host.open(second)
        try await secondVM.destroy()
        let removed = try await secondVM.delete(withStorage: true)
        #expect(removed.contains(seed))
        #expect(!FileManager.default.fileExists(atPath: seed))
    }

    @Test func badIdentityInputIsRefusedAndMakesNothing() async throws {
        let sandbox = try Sandbox("ident-bad")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let source = try await host.open(try sandbox.writeLinuxXML(domainType: type, tag: "gold"))
        let key = sandbox.directory.appendingPathComponent("id_ed25519")
        try run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key.path])
        let notCloudInit = sandbox.directory.appendingPathComponent("notes.txt")
        try "hello\n".write(to: notCloudInit, atomically: true, encoding: .utf8)
        let before = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let clone = "\(sandbox.name)-x"
        // A file already at the seed's path is never overwritten.
        let taken = sandbox.directory.appendingPathComponent("\(clone)-cidata.iso")
        try Data("mine".utf8).write(to: taken)

        let cases: [(arguments: [String], says: String)] = [
            (["--hostname", "web_01"], "hostname \"web_01\""),
            (["--hostname=-web"], "hyphen"),
            (["--ssh-key", key.path], "is a private key"),
            (["--ssh-key", sandbox.directory.appendingPathComponent("missing.pub").path], "missing.pub"),
            (["--user-data", notCloudInit.path], "user-data"),
            (["--hostname", "ok"], "\(taken.path) already exists"),
        ]
        for (arguments, says) in cases {
            let result = try VMCtl.run(["clone", source.name, clone, "--linked"] + arguments)
            #expect(result.status == 4, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
            // The private key's contents never reach the message.
            #expect(!result.stderr.contains("OPENSSH PRIVATE KEY"))
        }
        #expect(try Integration.domains(prefix: clone).isEmpty)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
                == (before + [taken.lastPathComponent]).sorted())
        #expect(FileManager.default.contents(atPath: taken.path) == Data("mine".utf8))
    }

    @Test func sysprepIsRefusedWithTheReasonWhereLibguestfsCannotRun() async throws {
        let support = try #require(try await host.capabilities().cloneIdentity[.sysprep])
        try #require(!support.isAvailable, "virt-sysprep works on this host: \(support.reason ?? "")")
        let sandbox = try Sandbox("ident-sysprep")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let source = try await host.open(try sandbox.writeLinuxXML(domainType: type, tag: "gold"))
        let before = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let started = ContinuousClock.now
        let result = try VMCtl.run("clone", source.name, "\(sandbox.name)-s", "--full", "--sysprep")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(try #require(support.reason)), "\(result.stderr)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == before)
        #expect(try Integration.domains(prefix: "\(sandbox.name)-s").isEmpty)
    }
}
