import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Migration between the testbed's two real libvirt hosts, with the Linux fixture guest.
@Suite("Migration on the two-host testbed", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct MigrationTests {
    let domainType: String
    /// Whether the guest may move live: not a TCG guest on a QEMU that loses its writes then
    /// (Capabilities.Feature.tcgLive; QEMU before 9.0).
    let movesLive: Bool

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        let caps = try await local.capabilities()
        domainType = try #require(caps.linuxDomainType)
        movesLive = domainType != "qemu" || caps.features[.tcgLive]?.isAvailable == true
        try await local.close()
    }

    func options(_ configure: (inout MigrationOptions) -> Void = { _ in }) -> MigrationOptions {
        Testbed.migrationOptions(configure)
    }

    /// Opens the guest on `from` and migrates it to `to`; the host connection is closed after.
    func migrate(
        _ name: String, from: Testbed.Name, to: Testbed.Name, _ options: MigrationOptions, destination: String? = nil
    ) async throws(VMDriverError) -> MigrationResult {
        let host = try await Host.connect(from.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(name)
        let job = try await vm.migrate(to: destination ?? to.address, options: options)
        return try await job.wait()
    }

    /// The error a migration ends with (thrown before the job or by it).
    func migrationError(
        _ name: String, from: Testbed.Name, to: Testbed.Name, _ options: MigrationOptions, destination: String? = nil
    ) async -> VMDriverError? {
        do {
            _ = try await migrate(name, from: from, to: to, options, destination: destination)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Types and security levels, there and back

    static let roundTrips: [(MigrationOptions.MigrationType, MigrationOptions.Security)] = [
        (.hot, .low), (.hot, .high), (.warm, .low), (.warm, .high), (.cold, .low), (.cold, .high),
    ]

    @Test(arguments: roundTrips)
    func thereAndBack(type: MigrationOptions.MigrationType, security: MigrationOptions.Security) async throws {
        let guest = TestbedGuest("\(type.rawValue)-\(security.rawValue)", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, tag: "\(type)", cmdline: "vmdriver.seq=20")
        let markers = try guest.markersOnDisk(guest.diskPath)
        #expect(markers == ["boot 1 tag=\(type)"])
        let options = options {
            $0.type = type
            $0.security = security
        }
        if type == .hot && !movesLive {
            // A TCG guest on a QEMU that loses its writes in a live move: refused, code 1,
            // saying why and what to use; nothing moved.
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options)
            #expect(error?.code == .notSupported, "\(String(describing: error))")
            #expect(
                error?.message.contains("TCG") == true && error?.message.contains("9.0") == true, "\(String(describing: error))")
            #expect(error?.message.contains("--type warm") == true, "\(String(describing: error))")
            try await nothingMoved(guest, from: .hosta)
            return
        }
        var boots = 1
        for (from, to) in [(Testbed.Name.hosta, Testbed.Name.hostb), (.hostb, .hosta)] {
            let beats = guest.log.heartbeats().count
            let result = try await migrate(guest.name, from: from, to: to, options)
            #expect(result.type == type)
            #expect(result.security == security)
            #expect(result.storage == .shared)
            #expect(result.state == .running)
            // Defined on exactly one host, running there, nothing left on the source.
            #expect(try guest.hosts() == [to])
            #expect(try guest.state(on: to) == .running)
            #expect(result.seconds > 0)
            // libvirt's call is part of the job, and the job is more than the call (its checks).
            let call = try #require(result.migrationCallSeconds)
            #expect(call > 0 && call < result.seconds)
            if type == .cold {
                // Shut down cleanly, moved, started again: a new boot with the old data.
                boots += 1
                #expect(result.steps.contains("started the VM on the target"))
                #expect(
                    await Integration.waitFor(60) { guest.log.heartbeats().count >= 1 && guest.log.markers()?.count == boots })
            } else {
                // The guest never restarted: the heartbeat goes on from where it was.
                #expect(try #require(result.downtimeMilliseconds) < 5_000)
                #expect(try #require(result.bytesTransferred) > 1 << 20)
                #expect(await guest.keepsBeating(after: beats), "no heartbeat after the \(type) migration to \(to)")
                #expect(guest.log.boots() == 1)
            }
        }
        // The data written before the migrations is on the disk after them, and so is every
        // record the guest synced at 20 a second before, during and after them.
        let after = try guest.markersOnDisk(guest.diskPath)
        #expect(after.first == "boot 1 tag=\(type)")
        #expect(after.count == boots)
        // (The guest reports once a second: a cold move's new boot gets that second.)
        let reported = guest.log.sequenceSynced()
        #expect(await Integration.waitFor(20) { guest.log.sequenceSynced() > reported })
        let synced = guest.log.sequenceSynced()
        let sequence = try DiskSequence(inImage: guest.diskPath)
        #expect(synced > 0 && sequence.whole >= synced, "synced 1...\(synced); the disk: \(sequence)")
    }

    // MARK: Storage: shared (above), copied, incremental; home, name, memory

    @Test func disksOnEachHostsOwnStorageAreCopiedThereAndBack() async throws {
        let guest = TestbedGuest("copy", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let sourceAllocated = try allocated(guest.diskFromHere(on: .hosta))
        for (from, to) in [(Testbed.Name.hosta, Testbed.Name.hostb), (.hostb, .hosta)] {
            let beats = guest.log.heartbeats().count
            let result = try await migrate(guest.name, from: from, to: to, options())
            #expect(result.storage == .copy, "sharing was checked, not assumed: \(result)")
            #expect(result.disks.map(\.mode) == ["copy"])
            #expect((result.diskBytesTransferred ?? 0) > 0)
            #expect(try guest.hosts() == [to])
            #expect(await guest.keepsBeating(after: beats))
            // The copy is on the target, sparse; the source's image is gone with the VM.
            let copy = guest.diskFromHere(on: to)
            #expect(FileManager.default.fileExists(atPath: copy))
            #expect(!FileManager.default.fileExists(atPath: guest.diskFromHere(on: from)))
            #expect(try allocated(copy) <= sourceAllocated + 4 << 20, "the copy is sparse")
            #expect(try guest.markersOnDisk(copy) == ["boot 1 tag=mig"])
        }
    }

    /// libvirt's offline migration moves no storage: VMDriver copies the image file itself,
    /// through both hosts' storage APIs, then starts the guest there with its data.
    @Test func aColdMigrationCopiesTheImageFiles() async throws {
        let guest = TestbedGuest("coldcopy", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.type = .cold })
        #expect(result.storage == .copy)
        #expect(result.steps.contains { $0.hasPrefix("copied the image of vda") }, "\(result.steps)")
        #expect(try guest.hosts() == [.hostb])
        #expect(!FileManager.default.fileExists(atPath: guest.diskFromHere(on: .hosta)))
        #expect(await Integration.waitFor(60) { guest.log.markers()?.count == 2 })
        #expect(guest.log.markers() == ["boot 1 tag=mig", "boot 2 tag=mig"])
    }

    /// A linked clone's overlay on hosta's own storage, its base on shared storage: only the
    /// overlay travels.
    @Test func aLinkedCloneWhoseBaseTheTargetHasCopiesOnlyItsOverlay() async throws {
        let guest = TestbedGuest("inc", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        let base = "\(Testbed.shared)/\(guest.name)-base.qcow2"
        try makeBigBase(base)
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, guest.diskFromHere(on: .hosta)])
        try await guest.boot(on: .hosta, diskReady: true)
        let beats = guest.log.heartbeats().count
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options())
        #expect(result.storage == .incremental, "\(result)")
        let overlay = guest.diskFromHere(on: .hostb)
        #expect(try backingFile(of: overlay) == base)
        // The 48 MiB written into the base did not travel; the overlay (a few MiB) did.
        let moved = try #require(result.diskBytesTransferred, "the overlay's bytes are counted")
        #expect(moved < 16 << 20, "disk bytes moved: \(moved)")
        // The copy on the target holds the overlay's data, not the base's 48 MiB.
        let size = try allocated(overlay)
        #expect(size < 40 << 20, "overlay on the target takes \(size) bytes")
        #expect(try guest.hosts() == [.hostb])
        #expect(await guest.keepsBeating(after: beats))
        #expect(try guest.markersOnDisk(overlay) == ["boot 1 tag=mig"])
        // The base stays where it is, for its other clones.
        #expect(FileManager.default.fileExists(atPath: base))
    }

    /// Bases in each host's own folder: compared byte for byte. A base that differs is refused
    /// for --storage incremental (code 6, nothing made on the target); an identical copy works.
    @Test func incrementalStorageChecksThatTheTargetsBaseIsIdentical() async throws {
        let guest = TestbedGuest("incbase", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        // One byte differs, far into the data.
        let (ours, theirs) = try await bootOverADifferingBase(guest)
        let differs = await migrationError(guest.name, from: .hosta, to: .hostb, options { $0.storage = .incremental })
        #expect(differs?.code == .incompatibleParameters, "\(String(describing: differs))")
        #expect(differs?.message.contains("differs") == true)
        #expect(!FileManager.default.fileExists(atPath: guest.diskFromHere(on: .hostb)), "no overlay left on the target")
        try await nothingMoved(guest, from: .hosta)
        // The check says so too, changing nothing.
        let host = try await Host.connect(Testbed.Name.hosta.uri)
        let check = try await host.open(guest.name).checkMigration(
            to: Testbed.Name.hostb.address, options: options { $0.storage = .incremental })
        try await host.close()
        #expect(check.problems.contains { $0.code == .incompatibleParameters && $0.message.contains("differs") })
        // An identical base: only the overlay moves.
        try FileManager.default.removeItem(atPath: theirs)
        try FileManager.default.copyItem(atPath: ours, toPath: theirs)
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.storage = .incremental })
        #expect(result.storage == .incremental)
        #expect(try #require(result.diskBytesTransferred) < 16 << 20)
        // Read the overlay on hostb over hostb's base (paths inside the hosts differ from here).
        let readable = FileManager.default.temporaryDirectory.appendingPathComponent("\(guest.name)-check.qcow2").path
        defer { try? FileManager.default.removeItem(atPath: readable) }
        try FileManager.default.copyItem(atPath: guest.diskFromHere(on: .hostb), toPath: readable)
        try run("qemu-img", ["rebase", "-u", "-F", "qcow2", "-b", theirs, readable])
        #expect(try guest.markersOnDisk(readable) == ["boot 1 tag=mig"])
    }

    /// `--storage incremental` with a base the target lacks: the base is copied there first (to
    /// the same path), then only the overlay moves; the guest runs on with its data. VMDriver
    /// placed that base, so the way back reads neither copy to compare them (`migrate --check`
    /// says so), and both hosts keep the base for the other clones of it.
    @Test func incrementalStorageCopiesABaseTheTargetLacksAndKnowsItOnTheWayBack() async throws {
        let guest = TestbedGuest("incseed", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await Self.withCache {
            let baseName = "\(guest.name)-base.qcow2"
            let (ours, theirs) = (
                "\(Testbed.Name.hosta.imagesFromHere)/\(baseName)", "\(Testbed.Name.hostb.imagesFromHere)/\(baseName)"
            )
            try makeBigBase(ours)
            try run(
                "qemu-img",
                [
                    "create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", "/var/lib/libvirt/images/\(baseName)",
                    guest.diskFromHere(on: .hosta), "128M",
                ])
            try await guest.boot(on: .hosta, diskReady: true)
            #expect(!FileManager.default.fileExists(atPath: theirs))
            var beats = guest.log.heartbeats().count
            let there = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.storage = .incremental })
            #expect(there.storage == .incremental, "\(there.steps)")
            #expect(there.steps.contains("copied /var/lib/libvirt/images/\(baseName) to host 'hostb'"), "\(there.steps)")
            #expect(try run("sha256sum", [theirs]).prefix(64) == run("sha256sum", [ours]).prefix(64), "the base arrived whole")
            #expect(try #require(there.diskBytesTransferred) < 16 << 20, "only the overlay went through QEMU")
            #expect(try backingFile(of: guest.diskFromHere(on: .hostb)) == "/var/lib/libvirt/images/\(baseName)")
            #expect(try guest.hosts() == [.hostb])
            #expect(await guest.keepsBeating(after: beats))
            #expect(FileManager.default.fileExists(atPath: ours), "hosta keeps its base")

            let hostb = try await Host.connect(Testbed.Name.hostb.uri)
            let check = try await hostb.open(guest.name).checkMigration(
                to: Testbed.Name.hosta.address, options: options { $0.storage = .incremental })
            try await hostb.close()
            #expect(check.problems.isEmpty, "\(check.problems)")
            #expect(
                check.decisions.contains(
                    "/var/lib/libvirt/images/\(baseName): identical on host 'hosta' by the content digests VMDriver recorded (nothing read)"
                ),
                "\(check.decisions)")
            beats = guest.log.heartbeats().count
            let back = try await migrate(guest.name, from: .hostb, to: .hosta, options { $0.storage = .incremental })
            #expect(back.storage == .incremental)
            #expect(!back.steps.contains { $0.contains(baseName) && $0.hasPrefix("copied") }, "\(back.steps)")
            #expect(try guest.hosts() == [.hosta])
            #expect(await guest.keepsBeating(after: beats))
            #expect(guest.log.boots() == 1)
            // Read inside hosta, where the overlay's backing path is.
            let flat = try Testbed.Name.hosta.flattenedCopy(
                of: "/var/lib/libvirt/images/\(PathName.last(guest.diskFromHere(on: .hosta)))")
            defer { try? FileManager.default.removeItem(atPath: flat) }
            #expect(try guest.markersOnDisk(flat) == ["boot 1 tag=mig"])
            #expect(FileManager.default.fileExists(atPath: theirs), "hostb keeps the base it was given")
        }
    }

    /// A file VMDriver copied from one host to another: both copies' digest is recorded from the
    /// bytes that went over, so comparing the pair reads neither. Shown by a byte changed in the
    /// copy behind libvirt's back with its times put back: the recorded digests still answer
    /// (nothing was read), while a machine without the record compares and finds the byte.
    @Test func aFileVMDriverCopiedIsComparedWithoutReadingEitherCopy() async throws {
        let guest = TestbedGuest("digest", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await Self.withCache {
            let baseName = "\(guest.name)-base.qcow2"
            let path = "/var/lib/libvirt/images/\(baseName)"
            let (ours, theirs) = (
                "\(Testbed.Name.hosta.imagesFromHere)/\(baseName)", "\(Testbed.Name.hostb.imagesFromHere)/\(baseName)"
            )
            try makeBigBase(ours)
            for name in Testbed.Name.allCases {
                let connection = try Testbed.connection(name)
                for pool in try connection.listAllStoragePools() { try? pool.refresh() }
                try connection.close()
            }
            let (a, b) = (try Testbed.connection(.hosta), try Testbed.connection(.hostb))
            defer {
                try? a.close()
                try? b.close()
            }
            let hosts = (
                source: try #require(hostUUID(try a.capabilitiesXML())), target: try #require(hostUUID(try b.capabilitiesXML()))
            )
            let (source, target) = (
                try await Host.connect(Testbed.Name.hosta.uri), try await Host.connect(Testbed.Name.hostb.uri)
            )
            let preparation = TargetPreparation(target: target, hostUUIDs: hosts)
            try await preparation.copyFile(path, to: path, from: source)
            await preparation.commit()
            try await target.close()
            #expect(try run("cmp", [ours, theirs]).isEmpty, "the copy holds the same bytes")

            func same() async throws -> (same: Bool, known: Bool)? {
                try await source.blocking("") { _ in
                    try MigrationStorage.sameImage(path, source: source.storage, target: b, hosts: hosts)
                }
            }
            #expect(try await same()! == (true, true))
            // One byte changed in hostb's copy, its times put back as they were.
            var times = stat()
            #expect(stat(theirs, &times) == 0)
            try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x33 80M 512", theirs])
            var kept = [times.st_atim, times.st_mtim]
            #expect(utimensat(AT_FDCWD, theirs, &kept, 0) == 0)
            #expect(try await same()! == (true, true), "known by the digests: neither copy read")
            let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-cache-\(UUID().uuidString)")
            setenv("VMDRIVER_CACHE_DIR", elsewhere.path, 1)
            defer { try? FileManager.default.removeItem(at: elsewhere) }
            #expect(try await same()! == (false, false), "compared byte for byte: the changed byte is found")
            try await source.close()
        }
    }

    /// Runs `body` with an empty cache of its own (`VMDRIVER_CACHE_DIR`): digests recorded by
    /// earlier runs do not count.
    static func withCache(_ body: () async throws -> Void) async throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-cache-\(UUID().uuidString)")
        setenv("VMDRIVER_CACHE_DIR", cache.path, 1)
        defer {
            unsetenv("VMDRIVER_CACHE_DIR")
            try? FileManager.default.removeItem(at: cache)
        }
        try await body()
    }

    /// `--storage auto` with a base the target holds with other bytes: copying only the overlay
    /// would corrupt the disk, so the disk is copied whole, flattened: it arrives with no backing
    /// image and the guest's data; the target's other base and the source's base are untouched.
    @Test func autoCopiesTheDiskWholeWhenTheTargetsBaseDiffers() async throws {
        let guest = TestbedGuest("incauto", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        let (ours, theirs) = try await bootOverADifferingBase(guest)
        let (oursSum, theirsSum) = (try run("sha256sum", [ours]), try run("sha256sum", [theirs]))
        let beats = guest.log.heartbeats().count
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options())
        #expect(result.storage == .copy, "\(result.steps)")
        #expect(try guest.hosts() == [.hostb])
        let arrived = guest.diskFromHere(on: .hostb)
        #expect(try backingFile(of: arrived) == nil, "flattened: no backing image on hostb")
        #expect(try guest.markersOnDisk(arrived) == ["boot 1 tag=mig"])
        #expect(try run("sha256sum", [theirs]) == theirsSum, "hostb's other base untouched")
        #expect(try run("sha256sum", [ours]) == oursSum, "hosta's base stays, untouched")
        #expect(await guest.keepsBeating(after: beats))
        #expect(guest.log.boots() == 1)
    }

    /// A guest on hosta whose disk is an overlay over a 128 MiB base in hosta's own folder, and
    /// a copy of that base on hostb with one byte changed far into the data. Returns both
    /// bases' paths from here.
    func bootOverADifferingBase(_ guest: TestbedGuest) async throws -> (ours: String, theirs: String) {
        let baseName = "\(guest.name)-base.qcow2"
        let ours = "\(Testbed.Name.hosta.imagesFromHere)/\(baseName)"
        let theirs = "\(Testbed.Name.hostb.imagesFromHere)/\(baseName)"
        try makeBigBase(ours)
        try FileManager.default.copyItem(atPath: ours, toPath: theirs)
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 100M 512", theirs])
        try run(
            "qemu-img",
            [
                "create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", "/var/lib/libvirt/images/\(baseName)",
                guest.diskFromHere(on: .hosta), "128M",
            ])
        try await guest.boot(on: .hosta, diskReady: true)
        return (ours, theirs)
    }

    /// A 128 MiB base: the fixture's data disk grown, with 48 MiB of pattern past its file system.
    func makeBigBase(_ path: String) throws {
        try FileManager.default.copyItem(
            at: Integration.fixtures.appendingPathComponent("data.qcow2"), to: URL(fileURLWithPath: path))
        try run("qemu-img", ["resize", "-q", path, "128M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 72M 48M", path])
    }

    @Test func theHomeFolderIsMadeOnTheTargetAndHoldsTheDisks() async throws {
        let guest = TestbedGuest("home", placement: .local(.hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        // Bad homes: code 4, nothing moved, nothing made.
        for home in ["relative/dir", "/var/lib/libvirt/images/../x", "", "/etc/hostname/sub"] {
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options { $0.home = home })
            #expect(error?.code == .invalidParameter, "\(home): \(String(describing: error))")
        }
        try await nothingMoved(guest, from: .hosta)
        let home = "/var/lib/libvirt/images/\(guest.name)-home/vms"
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.home = home })
        #expect(result.disks.map(\.targetPath) == ["\(home)/\(guest.name).qcow2"])
        let copy = "\(Testbed.Name.hostb.imagesFromHere)/\(guest.name)-home/vms/\(guest.name).qcow2"
        #expect(FileManager.default.fileExists(atPath: copy))
        #expect(try guest.definition(on: .hostb).contains("\(home)/\(guest.name).qcow2"))
        #expect(try guest.definition(on: .hostb, inactive: true).contains("\(home)/\(guest.name).qcow2"))
        #expect(try guest.markersOnDisk(copy) == ["boot 1 tag=mig"])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
    }

    @Test func aNewNameMemoryAndVCPUsTakeEffectOnTheTarget() async throws {
        let guest = TestbedGuest("settings", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        // Cold: shut down, moved under the new name with the new settings, started with them.
        let renamed = "\(guest.name)-big"
        let cold = try await migrate(
            guest.name, from: .hosta, to: .hostb,
            options {
                $0.type = .cold
                $0.newName = renamed
                $0.memoryMiB = 320
                $0.vcpus = 2
            })
        #expect(cold.vm == renamed)
        let connection = try Testbed.connection(.hostb)
        defer { try? connection.close() }
        let moved = try connection.lookupDomain(name: renamed)
        #expect(try moved.info().maxMemoryKiB == 320 * 1024)
        #expect(try moved.info().vcpus == 2)
        #expect(try moved.isActive())
        #expect(try Testbed.domains(on: .hosta, prefix: guest.name) == [])
        #expect(await Integration.waitFor(60) { guest.log.markers()?.count == 2 })
        // Hot: the running guest keeps its memory; the definition has the new size.
        let hot = try await migrate(renamed, from: .hostb, to: .hosta, options { $0.memoryMiB = 384 })
        #expect(hot.steps.contains { $0.contains("next boot") })
        #expect(
            try guest.definition(on: .hosta, name: renamed, inactive: true).contains("<memory unit=\"MiB\">384</memory>")
                || guest.definition(on: .hosta, name: renamed, inactive: true).contains("<memory unit='KiB'>393216</memory>"))
        // ... and the next boot has it.
        let home = try Testbed.connection(.hosta)
        defer { try? home.close() }
        let domain = try home.lookupDomain(name: renamed)
        #expect(try domain.info().maxMemoryKiB == 320 * 1024, "the running guest keeps its memory until it boots again")
        try domain.destroy()
        try domain.start()
        #expect(try domain.info().maxMemoryKiB == 384 * 1024)
        #expect(await Integration.waitFor(60) { guest.log.markers()?.count == 3 }, "the guest boots again with its data")
    }

    // MARK: Refusals: the right code, nothing moved

    /// The guest is where it was, running, and the other host has nothing of it.
    func nothingMoved(_ guest: TestbedGuest, from: Testbed.Name, beats: Int? = nil) async throws {
        #expect(try guest.hosts() == [from])
        #expect(try guest.state(on: from) == .running)
        #expect(try Testbed.domains(on: from.other, prefix: guest.name) == [])
        #expect(await guest.keepsBeating(after: beats ?? guest.log.heartbeats().count))
        #expect(guest.log.boots() == 1)
    }

    @Test func badDestinationsAndTheSameHostAreCode4() async throws {
        let guest = TestbedGuest("baddest", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        for destination in [
            "", "host name", "10.77.0.999", "http://10.77.0.2/", "[::1", "10.77.0.2:99999", "-x", "a..b", "qemu+tcp:///",
            "host/../etc", "bad\nname", "\u{0}",
        ] {
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options(), destination: destination)
            #expect(error?.code == .invalidParameter, "\(destination.debugDescription): \(String(describing: error))")
        }
        let formats = await migrationError(guest.name, from: .hosta, to: .hostb, options(), destination: "not a host")
        #expect(formats?.message.contains("IPv4") == true, "the accepted formats are named: \(String(describing: formats))")
        // The VM's own host, by address and by URI.
        for destination in [Testbed.Name.hosta.address, Testbed.Name.hosta.uri] {
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options(), destination: destination)
            #expect(error?.code == .invalidParameter, "\(destination): \(String(describing: error))")
            #expect(error?.message.contains("already is") == true)
        }
        try await nothingMoved(guest, from: .hosta)
    }

    @Test func aNameTakenOnTheTargetIsCode4UntilANewNameIsGiven() async throws {
        let guest = TestbedGuest("clash", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        // A different VM of the same name on hostb.
        let hostb = try Testbed.connection(.hostb)
        defer { try? hostb.close() }
        _ = try hostb.defineDomain(
            xml:
                "<domain type='\(domainType)'><name>\(guest.name)</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>"
        )
        let error = await migrationError(guest.name, from: .hosta, to: .hostb, options())
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("already exists") == true, "\(String(describing: error))")
        #expect(try guest.state(on: .hosta) == .running)
        #expect(try guest.state(on: .hostb) == .shutoff)
        // Under a new name it goes.
        let renamed = "\(guest.name)-moved"
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.newName = renamed })
        #expect(result.vm == renamed)
        #expect(try guest.state(on: .hostb, name: renamed) == .running)
        #expect(try Testbed.domains(on: .hosta, prefix: guest.name) == [])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count))
    }

    @Test func highSecurityWithoutCertificatesIsCode1AndMovesNothing() async throws {
        let guest = TestbedGuest("nocerts", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        // hostb's QEMU loses its certificates for the test.
        let certificates = Testbed.Name.hostb.qemuPKIFromHere
        let aside = certificates + ".aside"
        try FileManager.default.moveItem(atPath: certificates, toPath: aside)
        defer { try? FileManager.default.moveItem(atPath: aside, toPath: certificates) }
        let error = await migrationError(guest.name, from: .hosta, to: .hostb, options { $0.security = .high })
        #expect(error?.code == .notSupported, "\(String(describing: error))")
        #expect(error?.message.contains("certificates") == true)
        try await nothingMoved(guest, from: .hosta)
        // Never a silent fall back: the same migration at 'high' works once they are back.
        try FileManager.default.moveItem(atPath: aside, toPath: certificates)
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options { $0.security = .high })
        #expect(result.security == .high)
        #expect(try guest.hosts() == [.hostb])
    }

    /// Post-copy needs userfaultfd for the target's QEMU, which the kernel denies to QEMU's
    /// unprivileged user unless vm.unprivileged_userfaultfd = 1. The boot-sector guest runs
    /// under KVM here (post-copy is refused outright for TCG guests, see below).
    @Test func postcopyWithoutUserfaultfdIsCode1AndMovesNothing() async throws {
        let local = try await Host.connect(Integration.uri)
        let kvm = try await local.capabilities().accelerators.first { $0.name == "kvm" }?.runsGuests.isAvailable == true
        try await local.close()
        try #require(kvm, "needs KVM for real-mode guests (the accelerator probe says no)")
        let guest = TestbedGuest("nouffd", domainType: "kvm")
        defer { guest.cleanUp() }
        try await guest.bootBootSector(on: .hosta, domainType: "kvm")
        try await UserfaultfdSetting.with("0") {
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options { $0.postcopy = true })
            #expect(error?.code == .notSupported, "\(String(describing: error))")
            #expect(error?.message.contains("vm.unprivileged_userfaultfd") == true, "\(String(describing: error))")
            #expect(try guest.hosts() == [.hosta])
            #expect(try guest.state(on: .hosta) == .running)
            #expect(try Testbed.domains(on: .hostb, prefix: guest.name) == [])
            // The converge policy allows post-copy too, but goes on without it.
            let result = try await migrate(guest.name, from: .hosta, to: .hostb, options())
            #expect(result.steps.contains { $0.contains("post-copy is not available") }, "\(result.steps)")
            #expect(try guest.hosts() == [.hostb])
        }
    }

    /// Post-copy of a TCG guest lost pages in the page-pattern check (QEMU 7.2): refused with
    /// code 1 before anything starts, whatever the kernel allows.
    @Test func postcopyOfATCGGuestIsRefused() async throws {
        let guest = TestbedGuest("tcgpc", domainType: domainType)
        defer { guest.cleanUp() }
        try #require(domainType == "qemu", "Linux guests run under KVM on this machine")
        try await guest.boot(on: .hosta)
        try await UserfaultfdSetting.with("1") {
            let error = await migrationError(guest.name, from: .hosta, to: .hostb, options { $0.postcopy = true })
            #expect(error?.code == .notSupported)
            #expect(error?.message.contains("TCG") == true, "\(String(describing: error))")
            try await nothingMoved(guest, from: .hosta)
        }
    }

    // MARK: Cancel and timeout

    /// A guest dirtying memory and a bandwidth cap keep the migration in flight.
    static func inFlight(_ options: inout MigrationOptions) {
        options.bandwidthMiBps = 8
        options.policy = .plain
    }

    @Test func cancelMidMigrationLeavesTheSourceRunningAndTheTargetEmpty() async throws {
        let guest = TestbedGuest("cancel", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=64")
        let host = try await Host.connect(Testbed.Name.hosta.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(guest.name)
        let job = try await vm.migrate(to: Testbed.Name.hostb.address, options: options(Self.inFlight))
        // Wait until memory is moving, then cancel.
        var moving = false
        for await progress in job.progress where (progress.bytesProcessed ?? 0) > 1 << 20 {
            moving = true
            break
        }
        #expect(moving)
        #expect(Testbed.qemuProcesses(named: guest.name) == 2, "a QEMU on each host while the memory moves")
        job.cancel()
        await #expect(throws: VMDriverError.self) { try await job.wait() }
        try await nothingMoved(guest, from: .hosta)
        #expect(await Integration.waitFor(10) { Testbed.qemuProcesses(named: guest.name) == 1 })
        #expect(guest.log.lines().contains { $0.contains("CORRUPT") } == false)
        // A second migration then succeeds.
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options())
        #expect(result.state == .running)
        #expect(try guest.hosts() == [.hostb])
    }

    @Test func aTimeoutIsCode3AndSaysWhereTheVMIs() async throws {
        let guest = TestbedGuest("timeout", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=64")
        let error = await migrationError(
            guest.name, from: .hosta, to: .hostb,
            options {
                Self.inFlight(&$0)
                $0.timeout = .seconds(4)
            })
        #expect(error?.code == .timeout, "\(String(describing: error))")
        #expect(error?.message.contains("running on host 'hosta'") == true, "\(error?.message ?? "")")
        try await nothingMoved(guest, from: .hosta)
        #expect(await Integration.waitFor(10) { Testbed.qemuProcesses(named: guest.name) == 1 })
        let result = try await migrate(guest.name, from: .hosta, to: .hostb, options())
        #expect(result.state == .running)
        #expect(try guest.hosts() == [.hostb])
    }

    // MARK: Convergence

    /// 128 MiB rewritten flat out against a 32 MiB/s cap. Where the guest may move live: pre-copy
    /// alone cannot finish; the policy raises the downtime, lets auto-converge throttle, then
    /// switches to post-copy (or pauses the guest) to finish. A TCG guest on a QEMU that loses
    /// its writes in a live move: hot is refused (code 1) and the default move is warm. Either
    /// way, strictly: the guest never rebooted, its heartbeat goes on, and its page check, which
    /// reads back every word it wrote, finds nothing stale or lost.
    @Test func aGuestDirtyingMemoryFlatOutMovesWithNothingLost() async throws {
        let guest = TestbedGuest("converge", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=128 vmdriver.seq=20")
        #expect(await Integration.waitFor(30) { guest.log.lines().contains { $0.hasPrefix("VMDRIVER-DIRTY pass=2") } })
        try await UserfaultfdSetting.with("1") {
            let capped = options {
                $0.bandwidthMiBps = 32
                $0.timeout = .seconds(60)
            }
            let result: MigrationResult
            if movesLive {
                let plain = await migrationError(
                    guest.name, from: .hosta, to: .hostb,
                    options {
                        $0.bandwidthMiBps = 32
                        $0.policy = .plain
                        $0.timeout = .seconds(40)
                    })
                #expect(plain?.code == .timeout, "plain pre-copy: \(String(describing: plain))")
                try await nothingMoved(guest, from: .hosta)
                result = try await migrate(guest.name, from: .hosta, to: .hostb, capped)
                #expect(result.type == .hot)
                #expect(result.steps.contains { $0.contains("allowed downtime raised") }, "\(result.steps)")
                #expect(
                    result.steps.contains { $0.contains(domainType == "qemu" ? "paused the guest" : "switched to post-copy") },
                    "\(result.steps)")
            } else {
                var hot = capped
                hot.type = .hot
                let refused = await migrationError(guest.name, from: .hosta, to: .hostb, hot)
                #expect(refused?.code == .notSupported, "\(String(describing: refused))")
                #expect(refused?.message.contains("misses some guest writes") == true, "\(String(describing: refused))")
                try await nothingMoved(guest, from: .hosta)
                result = try await migrate(guest.name, from: .hosta, to: .hostb, capped)
                #expect(result.type == .warm, "\(result)")
            }
            try await isWhole(guest, result, on: .hostb, label: "move 1")
            // Then back and forth with the default options under the same cap, each move checked
            // the same way: 2 moves in all, 20 with scripts/test.sh --long.
            var from = Testbed.Name.hostb
            for move in 2...Self.flatOutMoves {
                let to = from.other
                let again = try await migrate(guest.name, from: from, to: to, capped)
                #expect(again.type == (movesLive ? .hot : .warm), "\(again)")
                try await isWhole(guest, again, on: to, label: "move \(move), \(from) → \(to)")
                from = to
            }
        }
    }

    /// 2, or 20 with scripts/test.sh --long (VMDRIVER_RELIABILITY_REPEAT=10).
    static let flatOutMoves = (Int(ProcessInfo.processInfo.environment["VMDRIVER_RELIABILITY_REPEAT"] ?? "") ?? 0) >= 10 ? 20 : 2

    /// After a successful move, strictly: the guest runs on `host` only, never rebooted, its
    /// heartbeat goes on, its page checks (each reads back every word it wrote) find nothing
    /// stale or lost, and every record it synced is on its disk.
    func isWhole(_ guest: TestbedGuest, _ result: MigrationResult, on host: Testbed.Name, label: String) async throws {
        #expect(result.state == .running, "\(label)")
        #expect(try guest.hosts() == [host], "\(label)")
        #expect(try guest.state(on: host) == .running, "\(label)")
        let moved = guest.log.lines().count
        #expect(
            await guest.keepsBeating(after: guest.log.heartbeats().count),
            "\(label): no heartbeat: \(guest.log.lines().suffix(30))")
        #expect(
            await Integration.waitFor(30) {
                guest.log.lines().dropFirst(moved).filter { $0.hasPrefix("VMDRIVER-DIRTY pass=") }.count >= 4
            }, "\(label): no page checks on the target: \(guest.log.lines().suffix(30))")
        let checks = guest.log.lines().filter { $0.hasPrefix("VMDRIVER-DIRTY pass=") }
        #expect(!checks.contains { $0.contains("CORRUPT") }, "\(label): \(checks.filter { $0.contains("CORRUPT") }.prefix(6))")
        #expect(guest.log.boots() == 1, "\(label): the guest rebooted: \(guest.log.lines().suffix(30))")
        #expect(try guest.markersOnDisk(guest.diskPath) == ["boot 1 tag=mig"], "\(label)")
        let synced = guest.log.sequenceSynced()
        let sequence = try DiskSequence(inImage: guest.diskPath)
        #expect(synced > 0 && sequence.whole >= synced, "\(label): synced 1...\(synced); the disk: \(sequence)")
    }
}

/// `vm.unprivileged_userfaultfd`, set for a test and put back after it.
enum UserfaultfdSetting {
    static let path = "/proc/sys/vm/unprivileged_userfaultfd"

    static func with(_ value: String, _ body: () async throws -> Void) async throws {
        let before = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try value.write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? before.write(toFile: path, atomically: false, encoding: .utf8) }
        try await body()
    }
}
