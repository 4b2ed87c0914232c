import Foundation
import Libvirt
import Testing

@testable import VMDriver

/// VMDriver's operation record in a domain's metadata, on test:///default: the round trip, who
/// owns it, the lock it is, and what `jobs` and `abortJob` make of it. Each test defines its own
/// domain (the test driver's state is shared by the whole test process).
@Suite("operation records on test:///default", .serialized)
struct OperationRecordTests {
    let host: VMDriver.Host

    init() async throws {
        host = try await Host.connect("test:///default")
    }

    /// A running, persistent domain of the test driver's own; removed by `remove`.
    func makeDomain(_ label: String) throws -> (Domain, String) {
        let name = "record-\(label)-\(UUID().uuidString.prefix(6).lowercased())"
        let xml = "<domain type='test'><name>\(name)</name><memory>65536</memory><os><type>hvm</type></os></domain>"
        let domain = try host.connection.defineDomain(xml: xml)
        try domain.start()
        return (domain, name)
    }

    func remove(_ domain: Domain) {
        try? domain.destroy()
        try? domain.undefine()
    }

    /// The pid of a process that has ended (and been reaped) in this boot.
    func endedPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    func record(target: String? = "qemu+tcp://elsewhere/system") throws -> OperationRecord {
        var record = try OperationRecord(operation: .migrate, source: host.name, target: target)
        record.targetName = "web"
        record.images = ["/var/lib/libvirt/images/a.qcow2", "/srv/it's <odd> & \"quoted\".img"]
        record.pools = [.init(name: "vmdriver-home-1234", madeFolder: true)]
        return record
    }

    // MARK: Round trip

    @Test func theMetadataElementRoundTripsThroughLibvirt() throws {
        let (domain, _) = try makeDomain("trip")
        defer { remove(domain) }
        let key = "https://example.invalid/t"
        try domain.setMetadata(.element, "<thing a='1'/>", key: "t", uri: key, [.live, .config])
        #expect(try domain.metadata(.element, uri: key, .live)?.contains("a=\"1\"") == true)
        #expect(try domain.metadata(.element, uri: key, .config)?.contains("a=\"1\"") == true)
        try domain.setMetadata(.element, nil, uri: key, [.live, .config])
        #expect(try domain.metadata(.element, uri: key, .live) == nil)
    }

    @Test func aRecordReadsBackAsWrittenAndOutlivesAStop() throws {
        let (domain, _) = try makeDomain("record")
        defer { remove(domain) }
        #expect(try OperationRecords.read(domain) == nil)
        var written = try record()
        // ISO 8601 keeps whole seconds.
        written.started = Date(timeIntervalSince1970: Double(Int(written.started.timeIntervalSince1970)))
        try OperationRecords.write(written, to: domain)
        #expect(try OperationRecords.read(domain) == written)
        // Written into the definition too: still there once the domain is off (a cold migration
        // shuts it down).
        try domain.destroy()
        #expect(try OperationRecords.read(domain) == written)
        #expect(OperationRecords.remove(from: domain))
        #expect(try OperationRecords.read(domain) == nil)
    }

    @Test func foreignOrBrokenElementsAreNoRecord() {
        #expect(OperationRecord(xml: "<other kind='migrate'/>") == nil)
        #expect(OperationRecord(xml: "<vmdriver:operation kind='migrate'/>") == nil)
        #expect(OperationRecord(xml: "not xml") == nil)
    }

    // MARK: Who owns it

    @Test func statLinesAreReadFromTheLastParenthesis() {
        let fields = (3...30).map { $0 == 22 ? "777" : "1" }
        #expect(ProcessIdentity.parseStat("42 (vm ctl) x) S " + fields.dropFirst().joined(separator: " ")) == 777)
        #expect(ProcessIdentity.parseStat("42 (vmctl) Z " + fields.dropFirst().joined(separator: " ")) == nil)
        #expect(ProcessIdentity.parseStat("42 (vmctl) S 1 2") == nil)
    }

    @Test func theOwnerIsAliveGoneOrUnknown() throws {
        let me = try record()
        #expect(me.owner.pid == getpid())
        #expect(me.ownerStatus == .alive)
        // The same pid, started at another time: a recycled pid, not the owner.
        var recycled = me
        recycled.owner.startTime += 1
        #expect(recycled.ownerStatus == .gone)
        var ended = me
        ended.owner.pid = try endedPID()
        #expect(ended.ownerStatus == .gone)
        // Another boot of this machine: it rebooted since. Another machine: cannot tell.
        var rebooted = me
        rebooted.owner.bootID = UUID().uuidString.lowercased()
        #expect(rebooted.ownerStatus == .gone)
        var elsewhere = rebooted
        elsewhere.owner.machine = "some-other-machine"
        #expect(elsewhere.ownerStatus == .unknown)
    }

    // MARK: The lock

    @Test func aSecondClaimIsCode5NamingTheOperationAndItsOwner() async throws {
        let (_, name) = try makeDomain("lock")
        let vm = try await host.open(name)
        defer { remove(vm.domain) }
        let claim = try await OperationClaim.claim(vm, operation: .migrate, target: "qemu+tcp://hostb/system")
        let error = await #expect(throws: VMDriverError.self) {
            _ = try await OperationClaim.claim(vm, operation: .migrate, target: "qemu+tcp://hostc/system")
        }
        #expect(error?.code == .invalidState)
        #expect(error?.message.contains("migration to qemu+tcp://hostb/system") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("pid \(getpid())") == true)
        // migrate() takes the same lock before it asks any host.
        let refused = await #expect(throws: VMDriverError.self) { _ = try await vm.migrate(to: "hostc") }
        #expect(refused?.code == .invalidState)
        #expect(refused?.message.contains("pid \(getpid())") == true)
        await claim.release()
        #expect(try OperationRecords.read(vm.domain) == nil)
    }

    @Test func aCloneIsRefusedWhileAnotherOperationHoldsTheVM() async throws {
        let (_, name) = try makeDomain("clone-lock")
        let vm = try await host.open(name)
        defer { remove(vm.domain) }
        let claim = try await OperationClaim.claim(vm, operation: .migrate, target: "qemu+tcp://hostb/system")
        let refused = await #expect(throws: VMDriverError.self) { _ = try await vm.clone(name: "\(name)-c", type: .full) }
        #expect(refused?.code == .invalidState)
        #expect(refused?.message.contains("migration to qemu+tcp://hostb/system") == true, "\(refused?.message ?? "")")
        #expect((try? await host.open("\(name)-c")) == nil, "no clone made")
        await claim.release()
    }

    @Test func aStaleRecordIsCode5AndSaysToRunAbort() async throws {
        let (domain, name) = try makeDomain("stale")
        defer { remove(domain) }
        var stale = try record()
        stale.owner.pid = try endedPID()
        try OperationRecords.write(stale, to: domain)
        let vm = try await host.open(name)
        let error = await #expect(throws: VMDriverError.self) { _ = try await vm.migrate(to: "hostc") }
        #expect(error?.code == .invalidState)
        #expect(error?.message.contains("vmctl abort \(name)") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("pid \(stale.owner.pid)") == true)
        // The check says so too, first.
        let check = await vm.checkMigration(to: "hostc")
        #expect(check.problems.first?.code == .invalidState)
        #expect(check.problems.first?.message.contains("vmctl abort \(name)") == true)
    }

    // MARK: jobs and abort

    @Test func jobsListsAVMWithARecordAndWhetherItsOwnerRuns() async throws {
        let (domain, name) = try makeDomain("jobs")
        defer { remove(domain) }
        let written = try record()
        try OperationRecords.write(written, to: domain)
        let all = try await host.jobs()
        let job = try #require(all.first { $0.vm == name })
        #expect(job.record?.images == written.images)
        #expect(job.record?.target == written.target)
        #expect(job.owner == .alive)
        // A VM without a record or a job is listed only when named.
        #expect(try await host.jobs().contains { $0.vm == "test" } == false)
        #expect(try await host.jobs(vm: "test").map(\.record) == [nil])
    }

    @Test func abortRemovesTheRecordOfAnOwnerThatIsGone() async throws {
        let (domain, name) = try makeDomain("abort")
        defer { remove(domain) }
        var stale = try record(target: nil)
        stale.images = []
        stale.pools = []
        stale.owner.pid = try endedPID()
        try OperationRecords.write(stale, to: domain)
        let result = try await host.open(name).abortJob(wait: .seconds(2))
        #expect(result.owner == .gone)
        #expect(result.recordRemoved)
        #expect(try OperationRecords.read(domain) == nil)
    }

    @Test func abortWaitsForALiveOwnerAndSaysItStillHoldsTheRecord() async throws {
        let (domain, name) = try makeDomain("alive")
        defer { remove(domain) }
        try OperationRecords.write(try record(), to: domain)
        let error = await #expect(throws: VMDriverError.self) {
            _ = try await host.open(name).abortJob(wait: .milliseconds(500))
        }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("pid \(getpid())") == true)
        #expect(try OperationRecords.read(domain) != nil, "a live owner's record is its own to remove")
    }

    @Test func abortOnTheTargetOfAMigrationIsCode5NamingTheSource() async throws {
        let (domain, name) = try makeDomain("target")
        defer { remove(domain) }
        var carried = try record()
        carried.source = "hosta"
        try OperationRecords.write(carried, to: domain)
        let error = await #expect(throws: VMDriverError.self) { _ = try await host.open(name).abortJob(wait: .seconds(1)) }
        #expect(error?.code == .invalidState)
        #expect(error?.message.contains("abort it on hosta") == true, "\(error?.message ?? "")")
        #expect(try OperationRecords.read(domain) != nil)
    }

    @Test func abortWithNothingToAbortIsCode5() async throws {
        let (domain, name) = try makeDomain("idle")
        defer { remove(domain) }
        let error = await #expect(throws: VMDriverError.self) { _ = try await host.open(name).abortJob() }
        #expect(error?.code == .invalidState)
    }

    // MARK: Clone records

    /// A clone's record as `CloneRecord` writes it, owned by a process that has ended.
    func cloneRecord(_ name: String, files: [String] = []) throws -> OperationRecord {
        var record = try OperationRecord(operation: .clone, source: host.name)
        record.targetName = name
        record.cloneUUID = UUID()
        record.files = files
        record.merges = [.init(disk: "vda", overlay: "/var/lib/libvirt/images/\(name)-vda-vmdriver-copy-x.qcow2")]
        record.helpers = [.init(pid: 424_242, startTime: 99)]
        record.started = Date(timeIntervalSince1970: Double(Int(record.started.timeIntervalSince1970)))
        record.owner.pid = try endedPID()
        return record
    }

    @Test func clonesOfOneVMKeepARecordEachBesideTheVMsOwn() throws {
        let (domain, _) = try makeDomain("clones")
        defer { remove(domain) }
        let first = try cloneRecord("c1", files: ["/srv/c1/c1-vda.qcow2", "/srv/it's <odd>.img"])
        let second = try cloneRecord("c2")
        try OperationRecords.writeClone(first, to: domain)
        try OperationRecords.writeClone(second, to: domain)
        #expect(try OperationRecords.read(domain) == nil, "the VM's own record is another")
        let read = try OperationRecords.readClones(domain).sorted { ($0.targetName ?? "") < ($1.targetName ?? "") }
        #expect(read == [first, second])
        #expect(OperationRecords.removeClone(try #require(first.cloneUUID), from: domain))
        #expect(try OperationRecords.readClones(domain) == [second])
        // In the definition too (a clone of a shut-off VM, or one stopped since).
        try domain.destroy()
        #expect(try OperationRecords.readClones(domain) == [second])
    }

    @Test func aDeadClonesRecordRefusesAMigrationButNotAnotherClone() async throws {
        let (domain, name) = try makeDomain("dead-clone")
        defer { remove(domain) }
        try OperationRecords.writeClone(try cloneRecord("half"), to: domain)
        let vm = try await host.open(name)
        let error = await #expect(throws: VMDriverError.self) { _ = try await vm.migrate(to: "hostc") }
        #expect(error?.code == .invalidState)
        #expect(error?.message.contains("a clone 'half'") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("vmctl abort \(name)") == true, "\(error?.message ?? "")")
        try await OperationClaim.check(vm, clones: false)
    }

    @Test func abortRemovesWhatADeadCloneListedAndKeepsOtherFiles() async throws {
        let (domain, name) = try makeDomain("abort-clone")
        defer { remove(domain) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-clone-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: folder) }
        let made = folder.appendingPathComponent("half-vda.qcow2").path
        let notMade = folder.appendingPathComponent("half_VARS.fd").path
        #expect(FileManager.default.createFile(atPath: made, contents: Data("x".utf8)))
        try OperationRecords.writeClone(try cloneRecord("half", files: [folder.path, made, notMade]), to: domain)
        // Someone else's file in the folder: the folder stays, with it.
        let other = folder.appendingPathComponent("other.txt").path
        #expect(FileManager.default.createFile(atPath: other, contents: Data("keep".utf8)))

        let result = try await host.open(name).abortJob(wait: .seconds(2))
        #expect(result.removed == [made], "\(result.steps)")
        #expect(!FileManager.default.fileExists(atPath: made))
        #expect(FileManager.default.fileExists(atPath: other))
        #expect(result.steps.contains { $0.contains("left the folder") }, "\(result.steps)")
        #expect(try OperationRecords.readClones(domain).isEmpty)
        #expect(result.recordRemoved)
    }

    @Test func abortKeepsAClonesFilesWhenTheCloneHadCompleted() async throws {
        let (domain, name) = try makeDomain("done-clone")
        defer { remove(domain) }
        let (clone, _) = try makeDomain("done-clone-c")
        defer { remove(clone) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-done-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        var record = try cloneRecord("done", files: [file])
        record.cloneUUID = try clone.uuid()
        record.merges = []
        try OperationRecords.writeClone(record, to: domain)
        let result = try await host.open(name).abortJob(wait: .seconds(2))
        #expect(result.removed.isEmpty)
        #expect(FileManager.default.fileExists(atPath: file))
        #expect(result.steps.contains { $0.contains("had completed") }, "\(result.steps)")
        #expect(try OperationRecords.readClones(domain).isEmpty)
    }

    @Test func jobsListsTheClonesBeingMade() async throws {
        let (domain, name) = try makeDomain("jobs-clone")
        defer { remove(domain) }
        let record = try cloneRecord("listed")
        try OperationRecords.writeClone(record, to: domain)
        let job = try #require(try await host.jobs().first { $0.vm == name })
        #expect(job.clones == [record])
        #expect(job.clones.first?.ownerStatus == .gone)
        _ = try await host.open(name).abortJob(wait: .seconds(2))
    }
}
