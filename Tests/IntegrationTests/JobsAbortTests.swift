import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// `vmctl jobs` and `vmctl abort` against migrations run by other vmctl processes on the
/// testbed: one held in flight by a bandwidth cap, seen from another process, its vmctl killed
/// with SIGKILL and its leftovers removed by `vmctl abort`; a second migration of the same VM
/// refused with code 5.
@Suite("Jobs and abort across processes", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct JobsAbortTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    /// A vmctl running in the background, its output in files (a pipe nobody reads would
    /// block it).
    final class Background {
        let process = Process()
        let stdout: URL
        let stderr: URL

        init(_ arguments: [String]) throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-\(UUID().uuidString)")
            (stdout, stderr) = (base.appendingPathExtension("out"), base.appendingPathExtension("err"))
            _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
            _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: VMCtl.path)
            process.arguments = arguments
            process.environment = VMCtl.environment()
            process.standardOutput = try FileHandle(forWritingTo: stdout)
            process.standardError = try FileHandle(forWritingTo: stderr)
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }
        var errors: String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }

        func kill(_ signal: Int32 = SIGKILL) {
            if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
        }

        /// Waits for it to end; nil when it is still running after `seconds`.
        func exitStatus(within seconds: Double) async -> Int32? {
            guard await Integration.waitFor(seconds, { !process.isRunning }) else { return nil }
            return process.terminationStatus
        }

        deinit {
            kill()
            try? FileManager.default.removeItem(at: stdout)
            try? FileManager.default.removeItem(at: stderr)
        }
    }

    /// `vmctl -c hosta … --json`, parsed.
    func jobs(_ guest: TestbedGuest) throws -> [String: Any]? {
        let output = try VMCtl.run(["-c", Testbed.Name.hosta.uri, "jobs", guest.name, "--json"])
        guard output.status == 0 else { return nil }
        let rows = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]]
        return rows?.first
    }

    /// libvirt's job on hosta's domain, read through the Libvirt layer (not the code under test).
    func libvirtJob(_ guest: TestbedGuest) throws -> Domain.JobType {
        let connection = try Testbed.connection(.hosta)
        defer { try? connection.close() }
        return try connection.lookupDomain(name: guest.name).jobStats().type
    }

    /// VMDriver's element in hosta's domain metadata, read through libvirt directly.
    func recordXML(_ guest: TestbedGuest) throws -> String? {
        let connection = try Testbed.connection(.hosta)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: guest.name)
        return try domain.metadata(.element, uri: OperationRecord.namespace, try domain.isActive() ? .live : .config)
    }

    func migrateArguments(_ guest: TestbedGuest, capped: Bool) -> [String] {
        ["-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--storage", "copy"]
            + (capped ? ["--bandwidth", "2"] : [])
    }

    /// Waits until `vmctl jobs` shows the migration out with the background vmctl's record.
    func waitUntilListed(_ guest: TestbedGuest, owner: Background) async throws -> [String: Any] {
        var row: [String: Any]?
        let listed = await Integration.waitFor(60) {
            row = try? jobs(guest)
            let libvirt = row?["libvirt"] as? [String: Any]
            let record = row?["record"] as? [String: Any]
            let images = record?["images"] as? [String] ?? []
            return libvirt?["operation"] as? String == "migration out"
                && (record?["owner"] as? [String: Any])?["pid"] as? Int == Int(owner.pid) && !images.isEmpty
        }
        try #require(listed, "vmctl jobs never showed the migration: \(String(describing: row)); vmctl said: \(owner.errors)")
        return try #require(row)
    }

    @Test func aKilledMigrationIsListedAndAbortCleansUpAfterIt() async throws {
        let guest = TestbedGuest("abort", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let copy = guest.diskFromHere(on: .hostb)
        let owner = try Background(migrateArguments(guest, capped: true))
        defer { owner.kill() }

        let row = try await waitUntilListed(guest, owner: owner)
        let record = try #require(row["record"] as? [String: Any])
        #expect(record["operation"] as? String == "migrate")
        #expect((record["target"] as? String)?.contains(Testbed.Name.hostb.address) == true)
        #expect(row["owner"] as? String == "alive")
        #expect(record["images"] as? [String] == [guest.diskPath], "the copy VMDriver made on hostb")
        #expect(FileManager.default.fileExists(atPath: copy), "the target image exists while the migration runs")

        // hostb sees the incoming half with the record that travelled in the domain's metadata;
        // libvirt aborts a migration only on its source: code 5 there.
        let incoming = try VMCtl.run(["-c", Testbed.Name.hostb.uri, "jobs", guest.name, "--json"])
        let incomingRow = (try JSONSerialization.jsonObject(with: Data(incoming.stdout.utf8)) as? [[String: Any]])?.first
        let incomingOwner = (incomingRow?["record"] as? [String: Any])?["owner"] as? [String: Any]
        #expect(incomingOwner?["pid"] as? Int == Int(owner.pid), "\(incoming.stdout)")
        let wrongHost = try VMCtl.run(["-c", Testbed.Name.hostb.uri, "abort", guest.name])
        #expect(wrongHost.status == 5, "\(wrongHost.stderr)")
        #expect(owner.process.isRunning, "the migration goes on")

        owner.kill(SIGKILL)
        #expect(await owner.exitStatus(within: 10) != nil)
        // Seen from here, the record's owner is gone.
        #expect(await Integration.waitFor(5) { (try? jobs(guest))?["owner"] as? String == "gone" })

        let abort = try VMCtl.run(["-c", Testbed.Name.hosta.uri, "abort", guest.name, "--json"])
        #expect(abort.status == 0, "\(abort.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(abort.stdout.utf8)) as? [String: Any]
        #expect(result?["removed"] as? [String] == [guest.diskPath], "\(abort.stdout)")
        #expect(result?["recordRemoved"] as? Bool == true)

        // The source runs, with no job; hostb has neither the domain nor the image; no record.
        #expect(try guest.state(on: .hosta) == .running)
        #expect(try libvirtJob(guest) == .none)
        #expect(try guest.hosts() == [.hosta])
        #expect(await Integration.waitFor(10) { Testbed.qemuProcesses(named: guest.name) == 1 })
        #expect(!FileManager.default.fileExists(atPath: copy), "abort removed the image VMDriver made on hostb")
        #expect(try recordXML(guest) == nil)
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))

        // The same migration, uncapped, now succeeds.
        let again = try VMCtl.run(migrateArguments(guest, capped: false))
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try guest.hosts() == [.hostb])
        #expect(try guest.state(on: .hostb) == .running)
        #expect(FileManager.default.fileExists(atPath: copy))
        // The record did not stay with the VM on its new host.
        let moved = try Testbed.connection(.hostb)
        defer { try? moved.close() }
        #expect(try moved.lookupDomain(name: guest.name).metadata(.element, uri: OperationRecord.namespace, .live) == nil)
    }

    /// With --home, VMDriver also made the folder on the target through a transient pool: abort
    /// stops the pool and removes the folder with the image.
    @Test func abortAlsoTakesAwayTheHomeFolderAndItsTransientPool() async throws {
        let guest = TestbedGuest("abhome", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let home = "/var/lib/libvirt/images/\(guest.name)-home/vms"
        let homeFromHere = "\(Testbed.Name.hostb.imagesFromHere)/\(guest.name)-home/vms"
        let owner = try Background(migrateArguments(guest, capped: true) + ["--home", home])
        defer { owner.kill() }
        let row = try await waitUntilListed(guest, owner: owner)
        let pools = (row["record"] as? [String: Any])?["pools"] as? [[String: Any]] ?? []
        #expect(pools.count == 1, "the transient pool is in the record: \(row)")
        #expect(FileManager.default.fileExists(atPath: "\(homeFromHere)/\(guest.name).qcow2"))
        /// hostb's active pools over the home folder.
        func poolsOverHome() throws -> Int {
            let connection = try Testbed.connection(.hostb)
            defer { try? connection.close() }
            return try connection.listAllStoragePools().filter {
                (try? $0.isActive()) == true && (try? $0.xmlDescription())?.contains("<path>\(home)</path>") == true
            }.count
        }
        #expect(try poolsOverHome() == 1)

        owner.kill(SIGKILL)
        #expect(await owner.exitStatus(within: 10) != nil)
        let abort = try VMCtl.run(["-c", Testbed.Name.hosta.uri, "abort", guest.name, "--json"])
        #expect(abort.status == 0, "\(abort.stderr)")

        #expect(try guest.state(on: .hosta) == .running)
        #expect(try guest.hosts() == [.hosta])
        #expect(try poolsOverHome() == 0, "the transient pool is gone")
        #expect(!FileManager.default.fileExists(atPath: homeFromHere), "the folder VMDriver made is gone")
        #expect(try recordXML(guest) == nil)
    }

    @Test func aSecondMigrationOfTheSameVMIsCode5NamingTheOneInProgress() async throws {
        let guest = TestbedGuest("lock", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let first = try Background(migrateArguments(guest, capped: true))
        defer { first.kill() }
        _ = try await waitUntilListed(guest, owner: first)

        let second = try VMCtl.run(migrateArguments(guest, capped: false))
        #expect(second.status == 5, "\(second.stderr)")
        #expect(second.stderr.contains("migration"), "\(second.stderr)")
        #expect(second.stderr.contains("pid \(first.pid)"), "\(second.stderr)")
        #expect(first.process.isRunning, "the first migration goes on")

        // abort with the owner alive: libvirt's job ends, the owner rolls back and removes its record.
        let abort = try VMCtl.run(["-c", Testbed.Name.hosta.uri, "abort", guest.name, "--json"])
        #expect(abort.status == 0, "\(abort.stderr)")
        let firstStatus = await first.exitStatus(within: 30)
        #expect(firstStatus != nil && firstStatus != 0, "the first vmctl reports its migration failed: \(first.errors)")
        #expect(try recordXML(guest) == nil)
        #expect(try guest.hosts() == [.hosta])
        #expect(try guest.state(on: .hosta) == .running)
        #expect(!FileManager.default.fileExists(atPath: guest.diskFromHere(on: .hostb)))
    }
}
