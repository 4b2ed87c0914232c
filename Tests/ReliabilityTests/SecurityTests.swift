import Foundation
import Libvirt
import Logging
import Synchronization
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Every .swift file under Sources, with its path relative to the package.
private func sources() throws -> [(path: String, text: String)] {
    let root = packageRoot.appendingPathComponent("Sources")
    let files = (FileManager.default.enumerator(atPath: root.path)?.allObjects as? [String] ?? []).filter {
        $0.hasSuffix(".swift")
    }
    return try files.sorted().map { ("Sources/\($0)", try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8)) }
}

/// A swift-log handler that keeps every message with its metadata, at every level.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var logger: Logger {
        var logger = Logger(label: "reliability") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

@Suite("Security: TLS verification, file modes, logs, no shell")
struct SecurityTests {
    // MARK: (a) TLS verification is on by default

    @Test(arguments: ["hostb", "10.77.0.2", "10.77.0.2:16514", "[fd00::2]:16514", "a.example.org"])
    func builtURIsNeverTurnVerificationOff(text: String) throws {
        let destination = try MigrationDestination(parsing: text)
        for security in MigrationOptions.Security.allCases {
            let uri = MigrationPlan.peerURI(destination: destination, security: security)
            #expect(!uri.contains("no_verify"), "\(uri)")
            #expect(uri.hasPrefix(security == .low ? "qemu+tcp://" : "qemu+tls://"), "\(uri)")
            let client = MigrationPlan.clientURI(peerURI: uri, pkiPath: "/var/lib/vmdriver/client")
            #expect(!client.contains("no_verify"))
        }
    }

    @Test(arguments: ["/k&no_verify=1", "/k?no_verify=1", "/k#x&no_verify=1", "/k%26no_verify%3D1", "/k with space", "/ключ"])
    func aPKIPathCannotAddURIParameters(pki: String) throws {
        let client = MigrationPlan.clientURI(peerURI: "qemu+tls://10.77.0.2/system", pkiPath: pki)
        let items = try #require(URLComponents(string: client)?.queryItems)
        #expect(items.map(\.name) == ["pkipath"], "\(client)")
        #expect(items.first?.value == pki, "\(client)")
    }

    @Test func highSecurityNeverRunsWithoutVerification() throws {
        var options = MigrationOptions()
        options.security = .high
        for uri in [
            "qemu+tls://h/system?no_verify=1", "qemu+tls://h/system?NO_VERIFY=yes", "qemu+tls://h/system?a=b&no_verify=1",
        ] {
            let problems = MigrationPlan.validate(options: options, destination: try MigrationDestination(parsing: uri))
            #expect(problems.contains { $0.code == .incompatibleParameters && $0.message.contains("no_verify") }, "\(uri)")
        }
        // Explicitly asked for at a lower level, it is the caller's choice: allowed.
        options.security = .normal
        let normal = MigrationPlan.validate(
            options: options, destination: try MigrationDestination(parsing: "qemu+tls://h/system?no_verify=1"))
        #expect(normal.isEmpty)
        // no_verify=0 keeps verification on.
        options.security = .high
        #expect(
            MigrationPlan.validate(
                options: options, destination: try MigrationDestination(parsing: "qemu+tls://h/system?no_verify=0")
            ).isEmpty)
    }

    @Test func noSourceFileTurnsVerificationOff() throws {
        for (path, text) in try sources() {
            // Code, not comments: a comment may explain what is refused.
            let code = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
            for line in code {
                #expect(!line.contains("no_verify="), "\(path) builds a URI without certificate checks: \(line)")
                #expect(!line.contains("tls_verify"), "\(path): \(line)")
            }
        }
    }

    // MARK: (b) restrictive modes for the files VMDriver makes

    @Test func reservedImagesAre0600AndNeverOverwrite() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-modes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let old = umask(0)  // the most permissive umask: the mode must not depend on it
        defer { umask(old) }
        let path = folder.appendingPathComponent("disk.qcow2").path
        try LocalImages.reserve(path)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600, "mode \(String(mode, radix: 8))")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: VMDriverError.self) { try LocalImages.reserve(path) }
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("nothing was overwritten") == true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
    }

    @Test func qemuImgKeepsTheReservedMode() throws {
        guard let qemuImg = Subprocess.which("qemu-img") else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-modes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = folder.appendingPathComponent("base.qcow2").path
        let created = try Subprocess.run(qemuImg, ["create", "-q", "-f", "qcow2", base, "1M"])
        #expect(created.status == 0)
        let overlay = folder.appendingPathComponent("overlay.qcow2").path
        try LocalImages.reserve(overlay)
        try LocalImages.createOverlay(overlay, base: base, baseFormat: "qcow2")
        let copy = folder.appendingPathComponent("copy.qcow2").path
        try LocalImages.reserve(copy)
        try DiskCopier.copy(
            DiskCopier.Plan(source: overlay, target: copy, format: "qcow2", flatten: true, bytes: 0), handle: Subprocess.Handle()
        ) { _ in }
        let raw = folder.appendingPathComponent("copy.img").path
        try LocalImages.reserve(raw)
        try DiskCopier.copy(
            DiskCopier.Plan(source: base, target: raw, format: "qcow2", flatten: false, bytes: 0), handle: Subprocess.Handle()
        ) { _ in }
        for path in [overlay, copy, raw] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(path): mode \(String(mode, radix: 8))")
        }
    }

    @Test func storageVolumesAreRequested0600() throws {
        // libvirt's test driver keeps the volume definition as asked: the mode VMDriver asks for.
        let connection = try Connection(uri: "test:///default")
        let pool = try connection.lookupStoragePool(name: "default-pool")
        let name = "vmdriver-mode-\(UUID().uuidString.prefix(8)).qcow2"
        let volume = try StoragePools.createVolume(named: name, capacity: 1 << 20, format: "qcow2", in: pool)
        defer { try? volume.delete() }
        let xml = try XMLTree.parse(try volume.xmlDescription())
        #expect(xml.child("target")?.child("permissions")?.child("mode")?.trimmedText == "0600")
    }

    // MARK: (c) no secrets in logs

    @Test func logsAndMessagesCarryNoKeyMaterial() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let secret = "SECRET-\(UUID().uuidString)"
        let key = "-----BEGIN PRIVATE KEY-----\n\(secret)\n-----END PRIVATE KEY-----\n"
        for file in ["clientkey.pem", "clientcert.pem", "cacert.pem"] {
            try key.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let log = CapturedLog()
        var messages: [String] = []
        // A TLS connection with the pkipath: refused (nothing listens), and it must say so without the key.
        do {
            _ = try await VMDriver.Host.connect("qemu+tls://127.0.0.1:1/system?pkipath=\(folder.path)", logger: log.logger)
        } catch {
            messages.append(error.message)
        }
        // A migration preflight with the pkipath, from a host that connects.
        let host = try await VMDriver.Host.connect("test:///default", logger: log.logger)
        let vm = try await host.open("test")
        var options = MigrationOptions()
        options.security = .high
        options.clientPKIPath = folder.path
        let check = await vm.checkMigration(to: "qemu+tls://127.0.0.1:1/system", options: options)
        messages += check.problems.map(\.message) + check.decisions
        do { _ = try await vm.migrate(to: "127.0.0.1:1", options: options) } catch { messages.append(error.message) }
        try await host.close()
        // vmctl --verbose, the same way.
        let run = try VMCtl.run(
            [
                "-c", "test:///default", "--verbose", "migrate", "test", "qemu+tls://127.0.0.1:1/system", "--security", "high",
                "--pkipath", folder.path,
            ])
        let everything = ([log.text, run.stdout, run.stderr] + messages).joined(separator: "\n")
        #expect(!messages.isEmpty)
        #expect(!everything.contains(secret))
        #expect(!everything.contains("BEGIN PRIVATE KEY"))
    }

    // MARK: (d) no shell

    @Test func onlyTheSubprocessHelperSpawnsAndNeverThroughAShell() throws {
        // The one helper starts children with posix_spawn (an executable path and an argument
        // array); nothing else starts a process, and nothing names a shell.
        let helper = "Sources/VMDriver/Internal/Subprocess+Cancellable.swift"
        var helperSpawns = false
        for (path, text) in try sources() {
            for pattern in ["/bin/sh", "/bin/bash", "\"-c\"", "system(", "popen(", "execv", "execl", "fork(", "posix_spawnp("] {
                #expect(!text.contains(pattern), "\(path) contains \(pattern)")
            }
            if path == helper {
                helperSpawns = text.contains("posix_spawn(&child, executable")
            } else {
                #expect(!text.contains("posix_spawn"), "\(path) starts a process itself")
                #expect(!text.contains("Process()"), "\(path) starts a process itself")
            }
        }
        #expect(helperSpawns, "the subprocess helper no longer spawns where this test looks")
    }

    @Test func shellSyntaxInArgumentsStaysText() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-shell-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let marker = folder.appendingPathComponent("pwned").path
        let hostile = ["; touch \(marker)", "$(touch \(marker))", "`touch \(marker)`", "| touch \(marker)", "&& touch \(marker)"]
        let echo = try #require(Subprocess.which("echo"))
        let output = try Subprocess.run(echo, hostile)
        #expect(output.status == 0)
        #expect(String(decoding: output.stdout, as: UTF8.self) == hostile.joined(separator: " ") + "\n")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }
}

/// Real clones on qemu:///system (the host's own libvirtd): names full of XML and shell syntax
/// reach libvirt escaped and the file system as one file name, never a command; the disks
/// VMDriver makes are 0600.
@Suite(
    "Security: clones with hostile names on qemu:///system", .serialized,
    .enabled(if: FileManager.default.fileExists(atPath: "/run/libvirt/libvirt-sock"), "needs a running libvirtd"))
struct HostileCloneTests {
    static let names = [
        "vmdriver-test-rel-a&b<c>'d\"e", "vmdriver-test-rel-x; touch pwned", "vmdriver-test-rel-$(touch pwned)",
        "vmdriver-test-rel-`touch pwned`", "vmdriver-test-rel-漢字 😀",
    ]

    @Test(arguments: [CloneType.linked, .full])
    func hostileNamesAreOneFileNameAndModesAre0600(type: CloneType) async throws {
        guard let qemuImg = Subprocess.which("qemu-img") else { return }
        let tag = UUID().uuidString.prefix(6).lowercased()
        let folder = URL(fileURLWithPath: "/var/lib/libvirt/images/vmdriver-test-rel-\(tag)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let connection = try Connection(uri: "qemu:///system")
        let sourceName = "vmdriver-test-rel-src-\(tag)"
        var made: [String] = [sourceName]
        defer {
            for name in made {
                if let domain = try? connection.lookupDomain(name: name) {
                    try? domain.destroy()
                    try? domain.undefine([.snapshotsMetadata, .nvram])
                }
            }
            try? FileManager.default.removeItem(at: folder)
        }
        let disk = folder.appendingPathComponent("src-vda.qcow2").path
        #expect(try Subprocess.run(qemuImg, ["create", "-q", "-f", "qcow2", disk, "8M"]).status == 0)
        _ = try connection.defineDomain(
            xml: """
                <domain type='qemu'><name>\(sourceName)</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
                <os><type arch='x86_64'>hvm</type></os>
                <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='\(disk)'/>
                <target dev='vda' bus='virtio'/></disk></devices></domain>
                """)
        let host = try await VMDriver.Host.connect("qemu:///system")
        defer { Task { try? await host.close() } }
        let source = try await host.open(sourceName)
        for name in Self.names {
            let full = "\(name)-\(type.rawValue)-\(tag)"
            made.append(full)
            let clone = try await source.clone(name: full, type: type, destination: folder.path).wait()
            #expect(clone.name == full)
            // libvirt has it under exactly that name, and reads its own XML back.
            let domain = try connection.lookupDomain(name: full)
            #expect(try domain.name() == full)
            let xml = try XMLTree.parse(try domain.xmlDescription([.inactive]))
            #expect(xml.child("name")?.text == full)
            let file = try #require(xml.child("devices")?.children("disk").first?.child("source")?.attributes["file"])
            #expect(file == folder.appendingPathComponent("\(full)-vda.qcow2").path)
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode & 0o077 == 0, "\(file): mode \(String(mode, radix: 8))")
        }
        // Nothing ran: no "pwned" anywhere a shell would have put it.
        for place in [folder.path, FileManager.default.currentDirectoryPath, "/", "/tmp", "/var/lib/libvirt/images"] {
            #expect(!FileManager.default.fileExists(atPath: "\(place)/pwned"), "\(place)/pwned exists")
        }
        // Every file in the folder is the source's, a frozen image, or one of the clones'.
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        for file in files where file != "src-vda.qcow2" {
            let mode = try #require(
                try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(file).path)[.posixPermissions]
                    as? Int)
            #expect(mode & 0o077 == 0, "\(file): mode \(String(mode, radix: 8))")
        }
        for file in files {
            #expect(
                file.hasPrefix("src-vda") || file.hasPrefix(sourceName) || Self.names.contains { file.hasPrefix($0) },
                "unexpected file \(file)")
        }
    }
}
