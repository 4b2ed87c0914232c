import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

/// `vmctl watch --json` in other processes, one per host, while another vmctl migrates a guest.
@Suite("vmctl watch", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct WatchTests {
    /// The objects a watcher printed about `vm`, one per line.
    static func events(_ output: String, vm: String) -> [[String: Any]] {
        output.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.filter { $0["vm"] as? String == vm }
    }

    /// hosta's watcher sees the migration job (migration out, its memory passes, the record
    /// naming the vmctl that runs it), its end, and the VM stopping as migrated; hostb's sees
    /// it start as migrated. Ctrl-C ends each watcher with status 0.
    @Test func watchersOnBothHostsSeeAMigration() async throws {
        let local = try await Host.connect(Integration.uri)
        let domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
        let guest = TestbedGuest("watch", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=32")
        let watchers = try [Testbed.Name.hosta, .hostb].map { host in
            try VMCtl.Terminal(["-c", host.uri, "watch", "--json", "--interval", "0.2"])
        }
        defer { watchers.forEach { $0.cleanUp() } }
        // Registered once each has printed nothing yet and still runs.
        try await Task.sleep(for: .seconds(2))
        for watcher in watchers { #expect(await watcher.wait(seconds: 0) == nil, "\(watcher.stderr)") }

        let moved = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--bandwidth", "8",
        ])
        #expect(moved.status == 0, "\(moved.stderr)")
        try await Task.sleep(for: .seconds(2))
        for watcher in watchers {
            watcher.interrupt()
            #expect(await watcher.wait(seconds: 10) == 0, "a watch ends with status 0 on Ctrl-C: \(watcher.stderr)")
        }

        let source = Self.events(watchers[0].stdout, vm: guest.name)
        let jobs = source.filter { $0["kind"] as? String == "job" }
        #expect(!jobs.isEmpty, "hosta's watcher saw the job: \(watchers[0].stdout.suffix(2000))")
        let job = jobs.compactMap { $0["job"] as? [String: Any] }
        #expect(job.contains { $0["operation"] as? String == "migration out" })
        #expect(job.contains { ($0["memoryIteration"] as? Int ?? 0) >= 1 }, "a memory pass: \(job)")
        #expect(jobs.contains { ($0["operation"] as? String)?.contains("a migration to") == true }, "VMDriver's record")
        #expect(source.contains { $0["kind"] as? String == "job-ended" })
        #expect(source.contains { $0["event"] as? String == "stopped" && $0["detail"] as? String == "migrated" }, "\(source)")
        let target = Self.events(watchers[1].stdout, vm: guest.name)
        #expect(target.contains { $0["event"] as? String == "started" && $0["detail"] as? String == "migrated" }, "\(target)")
        #expect(target.allSatisfy { $0["host"] as? String != source.first?["host"] as? String }, "each watcher names its host")
        #expect(try guest.hosts() == [.hostb])
    }
}
