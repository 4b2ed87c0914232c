import Foundation
import Libvirt
import Testing

@testable import VMDriver

/// A private libvirt test-driver host: its own node file (test:///PATH), so its domains are
/// this test's alone, with a real disk image in its own folder. `snapshot()` is what a test
/// compares before and after: the host's domains with their state and XML, and the folder's files.
final class PrivateHost {
    let folder: URL
    let uri: String
    let host: VMDriver.Host

    init() async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-reliability-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let disk = folder.appendingPathComponent("src-vda.img").path
        _ = FileManager.default.createFile(atPath: disk, contents: Data(count: 4096))
        let node = """
            <node>
              <domain type='test'>
                <name>src</name>
                <uuid>0b2d8a4c-1d1e-4c5e-9d68-2f4f0c6d7a10</uuid>
                <memory unit='MiB'>64</memory>
                <vcpu>1</vcpu>
                <os><type>hvm</type></os>
                <devices>
                  <disk type='file' device='disk'><source file='\(disk)'/><target dev='vda' bus='virtio'/></disk>
                  <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>
                </devices>
              </domain>
            </node>
            """
        let file = folder.appendingPathComponent("node.xml").path
        try node.write(toFile: file, atomically: true, encoding: .utf8)
        uri = "test://\(file)"
        host = try await VMDriver.Host.connect(uri)
    }

    struct Snapshot: Equatable, CustomStringConvertible {
        var domains: [String]
        var files: [String]
        var description: String { "domains \(domains.map { String($0.prefix(60)) }), files \(files)" }
    }

    /// Every domain (name, state, inactive XML) and every file under the folder.
    func snapshot() throws -> Snapshot {
        let connection = host.connection
        let domains = try connection.listAllDomains().map { domain in
            "\(try domain.name()) \(try domain.state().state) \(try domain.xmlDescription([.inactive]))"
        }.sorted()
        let files = (FileManager.default.enumerator(atPath: folder.path)?.allObjects as? [String] ?? []).sorted()
        return Snapshot(domains: domains, files: files)
    }

    func close() async {
        try? await host.close()
        try? FileManager.default.removeItem(at: folder)
    }

    /// Runs `body`, then removes everything, whether `body` failed or not.
    static func with(_ body: (PrivateHost) async throws -> Void) async throws {
        let host = try await PrivateHost()
        do {
            try await body(host)
        } catch {
            await host.close()
            throw error
        }
        await host.close()
    }
}

/// Values no entry point should take: empty, huge, NUL, line breaks, control characters,
/// Unicode, XML specials, path traversal, shell syntax, format strings.
enum BadValues {
    static let huge = String(repeating: "a", count: 100_000)
    static let names: [String] = [
        "", ".", "..", "../x", "../../etc/passwd", "a/b", "/abs", "a\\b", "a\0b", "a\nb", "a\rb", "\t", "-rf", ".hidden",
        " lead", "trail ", "Sequence/\u{0650}", "\u{0650}x", "a/\u{301}b", "a\u{2028}b", "a\u{FFFF}b", "a\u{7F}b",
        String(repeating: "x", count: 201), huge,
    ]
    /// Names VMDriver takes, which must come through XML and file names intact.
    static let awkwardButValid: [String] = [
        "a<b&c>", "it's \"quoted\"", "漢字-😀", "x; touch pwned", "$(touch pwned)", "`id`", "%s%n%x", "\u{202E}gnp.exe",
    ]
    static let destinations: [String] = [
        "", "   ", "\0", "host\0evil", "host\nname", "ho st", huge, "漢字.example", "<a&b>", "../../etc", "/etc/passwd",
        "host:0", "host:65536", "host:-1", "host:", "[fd00::2", "[not-v6]:1", "1.2.3", "256.0.0.1", "-host", "host-",
        "qemu+ext://x/system?command=/bin/touch", "qemu+ssh://h/system?netcat=nc;id", "qemu+unix:///system",
        "qemu+tls://h/other", "xen://h/system", "qemu+tls:///system", "qemu://h/system#frag?x", "%00",
    ]
}

@Suite("Bad input: the library on libvirt's test driver")
struct BadInputLibraryTests {
    @Test(
        arguments: BadValues.names + [
            "no-such-vm", "00000000-0000-0000-0000-000000000000", "%s%n", "a<b>&'\"", "src\0evil", "src\n", "/etc/passwd\0.xml",
        ])
    func openRefusesWithCode4AndDefinesNothing(reference: String) async throws {
        try await PrivateHost.with { fixture in
            let before = try fixture.snapshot()
            let error = await #expect(throws: VMDriverError.self) { try await fixture.host.open(reference) }
            #expect(error?.code == .invalidParameter, "\(reference.prefix(40).debugDescription): \(error?.message ?? "")")
            #expect(error?.message.isEmpty == false)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test func transientWithAVMNameIsCode6() async throws {
        try await PrivateHost.with { fixture in
            let error = await #expect(throws: VMDriverError.self) { try await fixture.host.open("src", transient: true) }
            #expect(error?.code == .incompatibleParameters)
            #expect(error?.message.contains("'src'") == true)
        }
    }

    /// Domain XML files: broken, hostile (entity expansion, external entities), not text, not
    /// files at all, too big.
    @Test(arguments: [
        ("", "empty"),
        ("\u{FEFF}", "BOM only"),
        ("<domain type='test'><name>x</name", "cut short"),
        ("<domain type='test'><name>a&b</name></domain>", "raw ampersand"),
        ("<domain type='test'><name>ok</name><name>two</name><memory>1</memory></domain>", "rejected by libvirt"),
        (
            "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'><!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'><!ENTITY f '&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;'><!ENTITY g '&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;'>]><domain type='test'><name>&g;</name></domain>",
            "entity expansion"
        ),
        (
            "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/hostname'>]><domain type='test'><name>&x;</name><memory>1024</memory><os><type>hvm</type></os></domain>",
            "external entity"
        ),
    ])
    func badXMLFilesAreCode4AndDefineNothing(xml: String, what: String) async throws {
        try await PrivateHost.with { fixture in
            let file = fixture.folder.appendingPathComponent("bad.xml").path
            try xml.write(toFile: file, atomically: true, encoding: .utf8)
            let before = try fixture.snapshot()
            let started = ContinuousClock.now
            let error = await #expect(throws: VMDriverError.self, "\(what)") { try await fixture.host.open(file) }
            #expect(ContinuousClock.now - started < .seconds(10), "\(what) took too long")
            #expect(error?.code == .invalidParameter, "\(what): \(error?.message ?? "")")
            #expect(error?.message.contains(file) == true, "\(what): \(error?.message ?? "")")
            // Nothing of the host's files leaks into a message.
            let hostname = (try? String(contentsOfFile: "/etc/hostname", encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            if let hostname, hostname.count > 3 { #expect(error?.message.contains(hostname) != true) }
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: ["/dev/zero", "/dev/null", "/proc/self/mem", "/", "/etc/passwd", "/tmp/../../etc/shadow"])
    func specialFilesAreCode4(path: String) async throws {
        try await PrivateHost.with { fixture in
            let before = try fixture.snapshot()
            let error = await #expect(throws: VMDriverError.self) { try await fixture.host.open(path) }
            #expect(error?.code == .invalidParameter, "\(path): \(error?.message ?? "")")
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test func aFileBiggerThanADefinitionIsCode4WithoutReadingIt() async throws {
        try await PrivateHost.with { fixture in
            let file = fixture.folder.appendingPathComponent("huge.xml").path
            _ = FileManager.default.createFile(atPath: file, contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: file))
            try handle.truncate(atOffset: 64 << 20)  // sparse: 64 MiB of nothing
            try handle.close()
            let error = await #expect(throws: VMDriverError.self) { try await fixture.host.open(file) }
            #expect(error?.code == .invalidParameter)
            #expect(error?.message.contains("more than a domain definition") == true, "\(error?.message ?? "")")
        }
    }

    @Test(arguments: BadValues.names)
    func cloneRefusesBadNamesWithCode4AndMakesNothing(name: String) async throws {
        try await PrivateHost.with { fixture in
            let vm = try await fixture.host.open("src")
            let before = try fixture.snapshot()
            for type in [CloneType.full, .linked] {
                let error = await #expect(throws: VMDriverError.self) {
                    try await vm.clone(name: name, type: type, destination: fixture.folder.path)
                }
                #expect(error?.code == .invalidParameter, "\(name.prefix(30).debugDescription): \(error?.message ?? "")")
                #expect(error?.message.contains("cannot name a VM") == true)
            }
            let snapshotError = await #expect(throws: VMDriverError.self) { try await vm.createSnapshot(name: name) }
            #expect(snapshotError?.code == .invalidParameter)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: ["", "relative/dir", "clones", "./x", "/tmp/a\0b", "/tmp/a\nb", "/tmp/.xml"])
    func cloneRefusesBadDestinationsWithCode4(destination: String) async throws {
        try await PrivateHost.with { fixture in
            let vm = try await fixture.host.open("src")
            let before = try fixture.snapshot()
            let error = await #expect(throws: VMDriverError.self) {
                try await vm.clone(name: "ok-name", type: .linked, destination: destination)
            }
            #expect(error?.code == .invalidParameter, "\(destination.debugDescription): \(error?.message ?? "")")
            #expect(error?.message.contains("clone destination") == true)
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: BadValues.destinations)
    func migrateRefusesBadDestinationsWithCode4AndChangesNothing(destination: String) async throws {
        try await PrivateHost.with { fixture in
            let vm = try await fixture.host.open("src")
            let before = try fixture.snapshot()
            let error = await #expect(throws: VMDriverError.self) { try await vm.migrate(to: destination) }
            #expect(error?.code == .invalidParameter, "\(destination.prefix(40).debugDescription): \(error?.message ?? "")")
            #expect(error?.message.contains("is not a migration destination") == true)
            let check = await vm.checkMigration(to: destination)
            #expect(!check.migratable)
            #expect(check.problems.first?.code == .invalidParameter)
            #expect(try fixture.snapshot() == before)
        }
    }

    /// Options checked before any host is asked: bad values are code 4, contradictions code 6.
    @Test(arguments: [
        (#"{"newName":"../x"}"#, ReturnCode.invalidParameter, "cannot name a VM"),
        (#"{"newName":"a\nb"}"#, .invalidParameter, "cannot name a VM"),
        (#"{"memoryMiB":0}"#, .invalidParameter, "MiB"),
        (#"{"memoryMiB":18446744073709551615}"#, .invalidParameter, "MiB"),
        (#"{"vcpus":0}"#, .invalidParameter, "vCPUs"),
        (#"{"vcpus":4294967295}"#, .invalidParameter, "vCPUs"),
        (#"{"parallel":0}"#, .invalidParameter, "parallel"),
        (#"{"parallel":9223372036854775807}"#, .invalidParameter, "parallel"),
        (#"{"home":"relative"}"#, .invalidParameter, "home folder"),
        (#"{"home":"/srv/../etc"}"#, .invalidParameter, "home folder"),
        (#"{"home":"/srv/a\u0000b"}"#, .invalidParameter, "home folder"),
        (#"{"home":"/"}"#, .invalidParameter, "root folder"),
        (#"{"home":"/srv/../\u0301x"}"#, .invalidParameter, "home folder"),
        (#"{"home":"/srv/vms","storage":"shared"}"#, .incompatibleParameters, "--storage shared"),
        (#"{"pki":"keys"}"#, .invalidParameter, "PKI path"),
        (#"{"pki":"/k\nx"}"#, .invalidParameter, "PKI path"),
        (#"{"timeout":-1}"#, .invalidParameter, "timeout"),
        (#"{"dest":"qemu+tcp://hostb/system","security":"normal"}"#, .incompatibleParameters, "encrypted"),
        (#"{"dest":"qemu+tls://hostb/system?no_verify=1","security":"high"}"#, .incompatibleParameters, "no_verify"),
    ])
    func migrateRefusesBadOptionsBeforeTouchingAHost(json: String, code: ReturnCode, words: String) async throws {
        let spec = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var options = MigrationOptions()
        options.newName = spec["newName"] as? String
        options.memoryMiB = (spec["memoryMiB"] as? NSNumber)?.uint64Value
        options.vcpus = (spec["vcpus"] as? NSNumber)?.uint32Value
        options.parallelConnections = (spec["parallel"] as? NSNumber)?.intValue
        options.home = spec["home"] as? String
        options.clientPKIPath = spec["pki"] as? String
        options.timeout = (spec["timeout"] as? Int).map { .seconds($0) }
        if let storage = spec["storage"] as? String { options.storage = try #require(.init(rawValue: storage)) }
        if let security = spec["security"] as? String { options.security = try #require(.init(rawValue: security)) }
        try await PrivateHost.with { fixture in
            let vm = try await fixture.host.open("src")
            let before = try fixture.snapshot()
            let destination = spec["dest"] as? String ?? "10.77.0.2"
            let error = await #expect(throws: VMDriverError.self) { try await vm.migrate(to: destination, options: options) }
            #expect(error?.code == code, "\(json): \(error?.message ?? "")")
            #expect(error?.message.contains(words) == true, "\(json): \(error?.message ?? "")")
            // The preflight lists the same problem, and changes nothing either.
            let check = await vm.checkMigration(to: destination, options: options)
            #expect(check.problems.contains { $0.code == code && $0.message.contains(words) })
            #expect(try fixture.snapshot() == before)
        }
    }

    @Test(arguments: [
        "", "not a uri", "test:///default\0qemu:///system", "test:///default\n", "test:// /default", BadValues.huge,
        "漢字:///x", "://x", "test:/",
    ])
    func connectRefusesMalformedURIsWithCode4(uri: String) async {
        let error = await #expect(throws: VMDriverError.self) { try await VMDriver.Host.connect(uri) }
        #expect(error?.code == .invalidParameter, "\(uri.prefix(40).debugDescription): \(error?.message ?? "")")
    }

    /// Names VMDriver takes keep their characters through libvirt's XML: a snapshot name with
    /// `&`, quotes and `<` comes back as given, and the file the snapshot names stays in the
    /// disk's folder (on the test driver snapshots are metadata only; the clone-side file checks
    /// are in SecurityTests on a real host).
    @Test(arguments: BadValues.awkwardButValid)
    func awkwardNamesPassValidationAndStayInOneFolder(name: String) throws {
        try CloneDefinition.validate(name: name)
        let definition = try CloneDefinition(sourceXML: FuzzHarness.sampleDomain)
        let xml = definition.rewritten(
            name: name, disks: ["vda": (path: "/clones/\(name)-vda.qcow2", format: "qcow2")], logDirectory: "/clones", nvram: nil,
            lineage: nil)
        let parsed = try XMLTree.parse(xml)
        #expect(parsed.child("name")?.text == name)
        let file = try #require(parsed.child("devices")?.children("disk").first?.child("source")?.attributes["file"])
        #expect(PathName.parent(file) == "/clones")
        #expect(!xml.contains("<name>\(name)</name>") || !name.contains(where: { "<&".contains($0) }))
    }
}
