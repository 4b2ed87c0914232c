import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Promotion of a running linked clone (a block pull per disk), watched by libvirt's block-job
/// events: only a pull libvirt reports completed is a success.
@Suite("Promote on qemu:///system", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct PromoteTests {
    /// A pull that someone else aborts (here another connection, as `virsh blockjob --abort`
    /// would) ends the promotion with code 2; the clone still rests on its base and runs on.
    @Test func aBlockPullAbortedElsewhereIsAFailureNotAPromotion() async throws {
        let sandbox = try Sandbox("promote-abort")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let source = try await host.open(path)
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        try await clone.start()

        let job = try await clone.promote()
        // Another connection aborts the data disk's pull as soon as it runs.
        let other = try Connection(uri: Integration.uri)
        defer { try? other.close() }
        let domain = try other.lookupDomain(name: clone.name)
        let deadline = Date().addingTimeInterval(60)
        var aborted = false
        while !aborted && Date() < deadline && job.state == .running {
            if (try? domain.blockJobInfo(disk: "hdb")) != nil {
                try domain.blockJobAbort(disk: "hdb")
                aborted = true
            } else {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        try #require(aborted, "the pull of hdb was never seen running (job \(job.state))")
        let error = await #expect(throws: VMDriverError.self) { _ = try await job.wait(timeout: .seconds(60)) }
        #expect(error?.code == .failed, "\(String(describing: error))")
        #expect(error?.message.contains("hdb") == true, "\(error?.message ?? "")")
        // Still a linked clone: hdb rests on the base, the parent keeps its clone, it runs.
        let disks = try await clone.details().disks
        #expect(disks.first { $0.target == "hdb" }?.backingChain?.map(\.path) == [big.path])
        #expect(try await source.linkedClones() == [clone.name])
        #expect(try await clone.state() == .running)
        try await clone.destroy()
    }

    /// A promotion holds the VM's operation record: while another operation (a migration from
    /// another process) holds it, promote is code 5 naming it and changes nothing; while a
    /// promotion runs, a second one and a migration are code 5.
    @Test func aPromotionAndAnotherOperationExcludeEachOther() async throws {
        let sandbox = try Sandbox("promote-lock")
        defer { sandbox.cleanUp() }
        let (path, _) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 512)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let source = try await host.open(path)
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        try await clone.start()

        let migration = try await OperationClaim.claim(clone, operation: .migrate, target: "qemu+tcp://elsewhere/system")
        let refused = await #expect(throws: VMDriverError.self) { _ = try await clone.promote() }
        #expect(refused?.code == .invalidState)
        #expect(refused?.message.contains("migration to qemu+tcp://elsewhere/system") == true, "\(refused?.message ?? "")")
        #expect(try await clone.details().disks.allSatisfy { ($0.backingChain ?? []).isEmpty == false }, "still a linked clone")
        await migration.release()

        let job = try await clone.promote()
        let second = await #expect(throws: VMDriverError.self) { _ = try await clone.promote() }
        #expect(second?.code == .invalidState)
        let moving = await #expect(throws: VMDriverError.self) { _ = try await clone.migrate(to: "elsewhere") }
        #expect(moving?.code == .invalidState)
        _ = try await job.wait(timeout: .seconds(120))
        #expect(try await clone.details().disks.allSatisfy { ($0.backingChain ?? []).isEmpty })
        #expect(try OperationRecords.read(clone.domain) == nil, "the record is gone once it is done")
        try await clone.destroy()
    }
}
