import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// A VM with snapshots moves with them: libvirt alone refuses ("cannot migrate domain with N
/// snapshots"); VMDriver takes their metadata off the source for the move and redefines them
/// where the VM lands, or back on the source if the move fails.
@Suite("Snapshots migrate with the VM", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct SnapshotMigrationTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    func options(_ configure: (inout MigrationOptions) -> Void = { _ in }) -> MigrationOptions {
        Testbed.migrationOptions(configure)
    }

    func snapshots(of name: String, on host: Testbed.Name) async throws -> [SnapshotInfo] {
        let connected = try await Host.connect(host.uri)
        defer { Task { try? await connected.close() } }
        return try await connected.open(name).snapshots()
    }

    /// The guest booted on hosta writing its sequence, with s1, the freeze of a linked clone
    /// made then (`NAME-early`) and s2. Returns the clone, the sequence synced at s1 and the
    /// snapshots.
    func bootWithThreeSnapshots(_ guest: TestbedGuest) async throws -> (
        early: VirtualMachine, syncedAtS1: Int, before: [SnapshotInfo]
    ) {
        try await guest.boot(on: .hosta, cmdline: "vmdriver.seq=20")
        #expect(await Integration.waitFor(20) { guest.log.sequenceSynced() >= 20 })
        let hosta = try await Host.connect(Testbed.Name.hosta.uri)
        let vm = try await hosta.open(guest.name)
        let syncedAtS1 = guest.log.sequenceSynced()
        _ = try await vm.createSnapshot(name: "s1")
        let early = try await vm.clone(name: "\(guest.name)-early", type: .linked).wait()
        _ = try await vm.createSnapshot(name: "s2")
        let before = try await vm.snapshots()
        try await hosta.close()
        #expect(before.count == 3, "\(before.map(\.name))")
        #expect(before.first { $0.isCurrent }?.name == "s2")
        return (early, syncedAtS1, before)
    }

    /// Two user snapshots and VMDriver's own freeze (a linked clone of the running VM), on
    /// shared storage: hot (or warm) there and back. All three and the current one are on the
    /// host it ends on; a linked clone from a user snapshot that moved holds that moment's data;
    /// the clone made before the moves still boots; the VM's own later data is intact.
    @Test func userSnapshotsAndTheCloneFreezeTravelThereAndBack() async throws {
        let guest = TestbedGuest("snaps", domainType: domainType)
        defer { guest.cleanUp() }
        let (clone, syncedAtS1, before) = try await bootWithThreeSnapshots(guest)

        for (from, to) in [(Testbed.Name.hosta, Testbed.Name.hostb), (.hostb, .hosta)] {
            let beats = guest.log.heartbeats().count
            let host = try await Host.connect(from.uri)
            let result = try await host.open(guest.name).migrate(to: to.address, options: options()).wait()
            try? await host.close()
            #expect(result.state == .running)
            #expect(result.steps.contains { $0.hasPrefix("redefined the snapshots") }, "\(result.steps)")
            #expect(!result.steps.contains { $0.contains("could not") || $0.contains("is not on") }, "\(result.steps)")
            #expect(try guest.hosts() == [to])
            let after = try await snapshots(of: guest.name, on: to)
            #expect(after == before, "on \(to): \(after.map(\.name)) vs \(before.map(\.name))")
            #expect(await guest.keepsBeating(after: beats))
            #expect(guest.log.boots() == 1)
        }

        // A linked clone, on the host the VM ended on, from a user snapshot that moved: it holds
        // what the disk held at that moment.
        let home = try await Host.connect(Testbed.Name.hosta.uri)
        let fromS1 = try await home.open(guest.name).clone(name: "\(guest.name)-s1", type: .linked, snapshot: "s1").wait()
        let s1Disk = try #require(try await fromS1.details().disks.first?.path)
        let atS1 = try DiskSequence(inImage: s1Disk)
        #expect(atS1.whole >= syncedAtS1, "s1 was taken after record \(syncedAtS1): its clone holds \(atS1)")
        #expect(try guest.markersOnDisk(s1Disk) == ["boot 1 tag=mig"])
        try await fromS1.start()
        #expect(try await fromS1.state() == .running)
        // The clone made before the moves still rests on its frozen base: it starts.
        let early = try await home.open(clone.name)
        try await early.start()
        #expect(try await early.state() == .running)
        // Everything the VM itself wrote, before and after the snapshots, is in its disk.
        let synced = guest.log.sequenceSynced()
        let vmDisk = try #require(try await home.open(guest.name).details().disks.first?.path)
        let now = try DiskSequence(inImage: vmDisk)
        #expect(now.whole >= synced, "synced 1...\(synced); the disk: \(now)")
        try await home.close()
    }

    /// A move that fails puts the snapshots back on the source exactly as they were.
    @Test func aCancelledMovePutsTheSnapshotsBack() async throws {
        let guest = TestbedGuest("snapcancel", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=64")
        let host = try await Host.connect(Testbed.Name.hosta.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(guest.name)
        _ = try await vm.createSnapshot(name: "one")
        _ = try await vm.createSnapshot(name: "two")
        let before = try await vm.snapshots()
        let job = try await vm.migrate(
            to: Testbed.Name.hostb.address,
            options: options {
                $0.bandwidthMiBps = 4
                $0.policy = .plain
            })
        var moving = false
        for await progress in job.progress where (progress.bytesProcessed ?? 0) > 1 << 20 {
            moving = true
            break
        }
        #expect(moving)
        job.cancel()
        await #expect(throws: VMDriverError.self) { try await job.wait() }
        #expect(try guest.hosts() == [.hosta])
        #expect(try await vm.snapshots() == before)
        #expect(try await vm.state() == .running)
    }

    /// A VM whose linked clone stays behind on shared storage keeps its parent protection on
    /// the host it lands on: `vmctl delete --with-storage` there is code 5 naming the clone and
    /// the host it was made on, and removes nothing; the clone still starts.
    @Test func aParentThatMovedStillProtectsTheCloneItLeftBehind() async throws {
        let guest = TestbedGuest("snapkid", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let hosta = try await Host.connect(Testbed.Name.hosta.uri)
        defer { Task { try? await hosta.close() } }
        let kid = try await hosta.open(guest.name).clone(name: "\(guest.name)-kid", type: .linked).wait()
        let kidBase = try #require(try await kid.details().disks.first?.backingChain?.first?.path)
        let result = try await hosta.open(guest.name).migrate(to: Testbed.Name.hostb.address, options: options()).wait()
        #expect(try guest.hosts() == [.hostb], "\(result.steps)")

        #expect(try VMCtl.run(["-c", Testbed.Name.hostb.uri, "destroy", guest.name]).status == 0)
        let delete = try VMCtl.run(["-c", Testbed.Name.hostb.uri, "delete", guest.name, "--with-storage"])
        #expect(delete.status == 5, "\(delete.stdout)\n\(delete.stderr)")
        #expect(delete.stderr.contains("\(kid.name), made on hosta"), "\(delete.stderr)")
        #expect(try guest.state(on: .hostb) != nil, "still defined on hostb")
        #expect(FileManager.default.fileExists(atPath: kidBase), "the clone's base is still there")
        try await kid.start()
        #expect(try await kid.state() == .running)
    }

    /// The guest's files in a host's own images folder, by name.
    func files(of guest: TestbedGuest, on host: Testbed.Name) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: host.imagesFromHere)) ?? []).filter { $0.hasPrefix(guest.name) }
            .sorted()
    }

    /// Disks on each host's own storage (not shared), two user snapshots and the freeze of a
    /// linked clone: the chain's images the target lacks are copied first, then only the top
    /// image moves; there and back. The snapshots arrive whole each way; the clone made on the
    /// first host keeps its base there (never removed from under it); the host the VM left
    /// the second time holds none of its files; a clone from a snapshot that travelled twice
    /// holds that moment's data; the VM's own data is whole.
    @Test func snapshotChainsOnStorageThatIsNotSharedArriveWhole() async throws {
        let guest = TestbedGuest("snapchain", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        let (early, syncedAtS1, before) = try await bootWithThreeSnapshots(guest)
        let earlyBase = try #require(try await early.details().disks.first?.backingChain?.first?.path)
        #expect(files(of: guest, on: .hostb).isEmpty)

        for (from, to) in [(Testbed.Name.hosta, Testbed.Name.hostb), (.hostb, .hosta)] {
            let beats = guest.log.heartbeats().count
            let host = try await Host.connect(from.uri)
            let job = try await host.open(guest.name).migrate(to: to.address, options: options())
            let result = try await job.wait()
            try? await host.close()
            #expect(result.state == .running)
            #expect(result.storage == .incremental, "only the top image moves: \(result.steps)")
            #expect(result.steps.contains { $0.hasPrefix("redefined the snapshots") }, "\(result.steps)")
            #expect(!result.steps.contains { $0.contains("could not") || $0.contains("is not on") }, "\(result.steps)")
            #expect(try guest.hosts() == [to])
            #expect(try await snapshots(of: guest.name, on: to) == before, "on \(to)")
            #expect(await guest.keepsBeating(after: beats))
            #expect(guest.log.boots() == 1)
            if to == .hostb {
                // The chain's images were copied to hostb; the early clone's base stays on hosta.
                #expect(result.steps.contains { $0.hasPrefix("copied ") && $0.contains(" to ") }, "\(result.steps)")
                #expect(
                    FileManager.default.fileExists(atPath: "\(Testbed.Name.hosta.imagesFromHere)/\(PathName.last(earlyBase))"))
                #expect(result.steps.contains { $0.contains("kept \(earlyBase)") }, "\(result.steps)")
            }
        }
        // hostb, left behind the second time: none of the VM's files.
        #expect(files(of: guest, on: .hostb).isEmpty, "left on hostb: \(files(of: guest, on: .hostb))")

        let home = try await Host.connect(Testbed.Name.hosta.uri)
        defer { Task { try? await home.close() } }
        let fromS1 = try await home.open(guest.name).clone(name: "\(guest.name)-s1", type: .linked, snapshot: "s1").wait()
        let s1Disk = try #require(try await fromS1.details().disks.first?.path)
        let s1Flat = try Testbed.Name.hosta.flattenedCopy(of: s1Disk)
        defer { try? FileManager.default.removeItem(atPath: s1Flat) }
        let atS1 = try DiskSequence(inImage: s1Flat)
        #expect(atS1.whole >= syncedAtS1, "s1 was taken after record \(syncedAtS1): its clone holds \(atS1)")
        try await fromS1.start()
        #expect(try await fromS1.state() == .running)
        try await home.open(early.name).start()
        #expect(try await home.open(early.name).state() == .running, "the early clone still rests on its base")
        let synced = guest.log.sequenceSynced()
        let vmDisk = try #require(try await home.open(guest.name).details().disks.first?.path)
        let vmFlat = try Testbed.Name.hosta.flattenedCopy(of: vmDisk)
        defer { try? FileManager.default.removeItem(atPath: vmFlat) }
        let now = try DiskSequence(inImage: vmFlat)
        #expect(now.whole >= synced, "synced 1...\(synced); the disk: \(now)")
    }

    /// The target holds a file at a path of the chain, with other bytes: copying only the top
    /// over it would corrupt the disk, and the chain cannot be copied over it, so the move is
    /// refused (code 6, naming it) and nothing changes.
    @Test func aChainWhoseBaseDiffersOnTheTargetIsCode6() async throws {
        let guest = TestbedGuest("snapdiff", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let host = try await Host.connect(Testbed.Name.hosta.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(guest.name)
        _ = try await vm.createSnapshot(name: "kept")
        let before = try await vm.snapshots()
        // Something else at the base's path on hostb.
        let impostor = "\(Testbed.Name.hostb.imagesFromHere)/\(guest.name).qcow2"
        try run("qemu-img", ["create", "-q", "-f", "qcow2", impostor, "64M"])
        let connection = try Testbed.connection(.hostb)
        for pool in try connection.listAllStoragePools() { try? pool.refresh() }
        try connection.close()
        do {
            _ = try await vm.migrate(to: Testbed.Name.hostb.address, options: options()).wait()
            Issue.record("the migration went ahead")
        } catch {
            #expect(error.code == .incompatibleParameters, "\(error)")
            #expect(error.message.contains("'kept'") && error.message.contains(guest.diskPath), "\(error.message)")
        }
        #expect(try guest.hosts() == [.hosta])
        #expect(try await vm.snapshots() == before)
        #expect(try Testbed.domains(on: .hostb, prefix: guest.name) == [])
        #expect(files(of: guest, on: .hostb) == ["\(guest.name).qcow2"], "only the impostor")
    }
}
