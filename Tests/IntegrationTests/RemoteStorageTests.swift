import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// `vmctl -c qemu+tcp://…` on the testbed's hosta: the operations that touch disk images reach
/// the host's files through libvirt, never the files at the same paths on this machine. Each
/// test puts a decoy at those paths here (outside the testbed's mount namespaces, where hosta
/// has its own /var/lib/libvirt) and checks it is left byte for byte.
@Suite(
    "Remote storage through qemu+tcp on the testbed", .serialized,
    .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct RemoteStorageTests {
    let domainType: String
    let hosta = Testbed.Name.hosta

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    /// Files at hosta's paths on this machine, with random bytes, removed again by `remove()`.
    final class Decoys {
        private(set) var files: [String: Data] = [:]

        /// Puts a decoy at `path` (a path as hosta sees it) on this machine.
        func plant(_ path: String) throws {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) exists here already")
            let bytes = Data((0..<65_536).map { _ in UInt8.random(in: 0...255) })
            try bytes.write(to: URL(fileURLWithPath: path))
            files[path] = bytes
        }

        /// The decoys whose bytes changed or that are gone.
        func touched() -> [String] {
            files.keys.sorted().filter { FileManager.default.contents(atPath: $0) != files[$0] }
        }

        func remove() {
            for path in files.keys { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    /// Runs the built `vmctl` against hosta.
    func vmctl(_ arguments: String...) throws -> VMCtl.Output { try VMCtl.run(["-c", hosta.uri] + arguments) }

    /// hosta's path `path` (under /var/lib/libvirt/images) as reached from here.
    func fromHere(_ path: String) -> String { "\(hosta.imagesFromHere)/\(PathName.last(path))" }

    /// A guest on hosta with its disk in hosta's own images folder, booted once (its disk holds
    /// "boot 1 tag=TAG") and shut down.
    func shutOffGuest(_ guest: TestbedGuest, tag: String) async throws {
        try await guest.boot(on: hosta, tag: tag)
        let host = try await Host.connect(hosta.uri)
        defer { Task { try? await host.close() } }
        #expect(try await host.open(guest.name).shutdown(timeout: .seconds(60)).wait() == .shutOff)
    }

    /// Starts `name` on hosta with kernel tag `tag` (its markers get "boot N tag=TAG") and waits
    /// for the first heartbeat in its serial log; then destroys it, so its disk can be read.
    func bootOnce(_ name: String, retaggedFrom old: String, to tag: String, log: String) async throws {
        let connection = try Testbed.connection(hosta)
        defer { try? connection.close() }
        let xml = try connection.lookupDomain(name: name).xmlDescription([.inactive])
        let domain = try connection.defineDomain(
            xml: xml.replacingOccurrences(of: "vmdriver.tag=\(old)", with: "vmdriver.tag=\(tag)"))
        try domain.start()
        let serial = SerialLog(url: URL(fileURLWithPath: log))
        let booted = await Integration.waitFor(90) { serial.heartbeats().count >= 1 }
        try? domain.destroy()
        try #require(booted, "\(name) did not boot on hosta: \(serial.lines().suffix(5))")
    }

    @Test func deleteWithStorageRemovesTheHostsFilesAndLeavesTheLocalOnes() async throws {
        let guest = TestbedGuest("stor-del", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
        }
        try await guest.boot(on: hosta, start: false)
        try decoys.plant(guest.diskPath)
        #expect(FileManager.default.fileExists(atPath: guest.diskFromHere(on: hosta)))

        let result = try vmctl("delete", guest.name, "--with-storage")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try guest.hosts().isEmpty, "the VM is still defined")
        #expect(!FileManager.default.fileExists(atPath: guest.diskFromHere(on: hosta)), "hosta's disk is still there")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
    }

    @Test func aFullCloneIsMadeOnTheHostAndBootsWithTheData() async throws {
        let guest = TestbedGuest("stor-full", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
        }
        try await shutOffGuest(guest, tag: "src")
        let clone = "\(guest.name)-c"
        let cloneDisk = "/var/lib/libvirt/images/\(clone)-vda.qcow2"
        // Here, a file at the clone's target path: a clone that looked here would refuse it.
        try decoys.plant(cloneDisk)
        try decoys.plant(guest.diskPath)

        let result = try vmctl("clone", guest.name, clone, "--full")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        // An independent image on hosta with the source's data.
        #expect(try backingFile(of: fromHere(cloneDisk)) == nil)
        #expect(try Integration.markers(inImage: fromHere(cloneDisk)) == ["boot 1 tag=src"])
        // Sparse: nowhere near the disk's 64 MiB.
        #expect(try allocated(fromHere(cloneDisk)) < 64 * 1_048_576 / 4)

        try await bootOnce(clone, retaggedFrom: "src", to: "clone", log: fromHere("\(clone)-serial0.log"))
        #expect(try Integration.markers(inImage: fromHere(cloneDisk)) == ["boot 1 tag=src", "boot 2 tag=clone"])
        #expect(try Integration.markers(inImage: guest.diskFromHere(on: hosta)) == ["boot 1 tag=src"])
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
    }

    @Test func aSeededCloneGetsItsSeedOnTheHostAndTakesTheHostname() async throws {
        let guest = TestbedGuest("stor-seed", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
        }
        try await shutOffGuest(guest, tag: "src")
        let clone = "\(guest.name)-c"
        let seed = "/var/lib/libvirt/images/\(clone)-cidata.iso"
        // Here, a file at the seed's path: a seed written here would overwrite it.
        try decoys.plant(seed)

        let result = try vmctl("clone", guest.name, clone, "--linked", "--hostname", "remote-01", "--start")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        #expect(FileManager.default.fileExists(atPath: fromHere(seed)), "no seed on hosta")
        let log = SerialLog(url: URL(fileURLWithPath: fromHere("\(clone)-serial0.log")))
        #expect(
            await Integration.waitFor(90) { log.lines().contains("VMDRIVER-HOSTNAME remote-01") },
            "the clone printed \(log.lines().suffix(8))")

        // Live to hostb (neither host sees the other's images folder): the seed, which libvirt's
        // storage copy leaves out (read-only), goes with the VM, and leaves hosta.
        let beats = log.heartbeats().count
        let moved = try vmctl("migrate", clone, Testbed.Name.hostb.address, "--json")
        #expect(moved.status == 0, "\(moved.stderr)")
        let onB = "\(Testbed.Name.hostb.imagesFromHere)/\(clone)-cidata.iso"
        #expect(FileManager.default.contents(atPath: onB)?.count ?? 0 > 0, "no seed on hostb")
        #expect(!FileManager.default.fileExists(atPath: fromHere(seed)), "hosta kept its copy of the seed")
        let hostb = try Testbed.connection(.hostb)
        defer { try? hostb.close() }
        let definition = try DomainXML(parsing: try hostb.lookupDomain(name: clone).xmlDescription([.inactive]), origin: "hostb")
        #expect(definition.disks.contains { $0.device == "cdrom" && $0.path == seed }, "\(definition.disks.map(\.path))")
        // The guest runs on without a reboot: hostb's log (its own file at the same path) goes
        // on counting the heartbeats hosta's stopped at, with no boot in it.
        let logB = SerialLog(url: URL(fileURLWithPath: "\(Testbed.Name.hostb.imagesFromHere)/\(clone)-serial0.log"))
        #expect(await Integration.waitFor(20) { (logB.heartbeats().last ?? 0) > beats + 3 }, "\(logB.lines().suffix(5))")
        #expect(logB.boots() == 0 && log.boots() == 1)
        try? hostb.lookupDomain(name: clone).destroy()
        let deleted = try VMCtl.run(["-c", Testbed.Name.hostb.uri, "delete", clone, "--with-storage"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: onB), "hostb's seed is still there")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
    }

    @Test func aPromotedLinkedCloneOutlivesItsDeletedParent() async throws {
        let guest = TestbedGuest("stor-promo", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
        }
        try await shutOffGuest(guest, tag: "src")
        let clone = "\(guest.name)-c"
        let cloneDisk = "/var/lib/libvirt/images/\(clone)-vda.qcow2"
        #expect(try vmctl("clone", guest.name, clone, "--linked").status == 0)
        #expect(try backingFile(of: fromHere(cloneDisk)) != nil)
        try decoys.plant(cloneDisk)

        let promoted = try vmctl("promote", clone)
        #expect(promoted.status == 0, "\(promoted.stderr)")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        #expect(try backingFile(of: fromHere(cloneDisk)) == nil, "the clone still rests on a backing image")
        // Its parent and the parent's images can go: the clone has its own data.
        let deleted = try vmctl("delete", guest.name, "--with-storage")
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: hosta.imagesFromHere)
            .filter { $0.hasPrefix(guest.name) && !$0.hasPrefix(clone) }
        #expect(left.filter { $0.hasSuffix(".qcow2") }.isEmpty, "parent images left: \(left)")
        try await bootOnce(clone, retaggedFrom: "src", to: "clone", log: fromHere("\(clone)-serial0.log"))
        #expect(try Integration.markers(inImage: fromHere(cloneDisk)) == ["boot 1 tag=src", "boot 2 tag=clone"])
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
    }

    @Test func aSnapshotMakesItsOverlayOnTheHost() async throws {
        let guest = TestbedGuest("stor-snap", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
        }
        try await guest.boot(on: hosta, start: false)
        let overlay = "/var/lib/libvirt/images/\(guest.name)-vda-before.qcow2"
        // Here, a file at the overlay's path: a snapshot that looked here would refuse it.
        try decoys.plant(overlay)

        let result = try vmctl("snapshot", "create", guest.name, "before")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        #expect(try backingFile(of: fromHere(overlay)) == guest.diskPath)
        // A linked clone of that moment rests on the frozen image on hosta, and boots.
        let clone = "\(guest.name)-c"
        #expect(try vmctl("clone", guest.name, clone, "--linked", "--snapshot", "before").status == 0)
        #expect(try backingFile(of: fromHere("/var/lib/libvirt/images/\(clone)-vda.qcow2")) == guest.diskPath)
        try await bootOnce(clone, retaggedFrom: "mig", to: "clone", log: fromHere("\(clone)-serial0.log"))
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
    }

    @Test func aFullCloneOfARunningVMIntoANewFolderKeepsItRunning() async throws {
        let guest = TestbedGuest("stor-run", placement: .local(hosta), domainType: domainType)
        let decoys = Decoys()
        defer {
            guest.cleanUp()
            decoys.remove()
            try? FileManager.default.removeItem(atPath: "/var/lib/libvirt/images/\(guest.name)-dir")
        }
        try await guest.boot(on: hosta, tag: "src")
        let beats = guest.log.heartbeats().count
        let clone = "\(guest.name)-c"
        // A folder no storage pool on hosta covers, and which exists here only.
        let folder = "/var/lib/libvirt/images/\(guest.name)-dir"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        try decoys.plant("\(folder)/\(clone)-vda.qcow2")

        let result = try vmctl("clone", guest.name, clone, "--full", "--dest", folder)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        let cloneDisk = "\(hosta.imagesFromHere)/\(guest.name)-dir/\(clone)-vda.qcow2"
        #expect(try backingFile(of: cloneDisk) == nil)
        #expect(try Integration.markers(inImage: cloneDisk) == ["boot 1 tag=src"])
        // The source never stopped, and is back on its own disk (the freeze overlay merged).
        #expect(await guest.keepsBeating(after: beats))
        #expect(try guest.definition(on: hosta).contains("<source file='\(guest.diskPath)'"))
        // No transient pool is left behind on the host.
        let connection = try Testbed.connection(hosta)
        defer { try? connection.close() }
        let pools = try connection.listAllStoragePools().map { try $0.name() }
        #expect(pools.allSatisfy { !$0.hasPrefix("vmdriver-") }, "\(pools)")
    }

    @Test func capabilitiesSayWhatTheOperationsDo() async throws {
        let host = try await Host.connect(hosta.uri)
        defer { Task { try? await host.close() } }
        let noCertificate = try await host.capabilities(pkiPath: "/nonexistent-\(UUID().uuidString)")
        // Full and linked clones work on this remote host (the tests above make them).
        #expect(noCertificate.cloneTypes[.full]?.isAvailable == true)
        #expect(noCertificate.cloneTypes[.linked]?.isAvailable == true)
        // security normal dials qemu+tls://: without a client certificate it cannot, and the
        // migration check refuses it with the same code 1.
        #expect(noCertificate.securityLevels[.normal]?.status == .unavailable)
        let withCertificate = try await host.capabilities(pkiPath: Testbed.clientPKI)
        #expect(withCertificate.securityLevels[.normal]?.isAvailable == true)

        let guest = TestbedGuest("stor-caps", placement: .local(hosta), domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: hosta, start: false)
        var options = MigrationOptions()
        options.security = .normal
        options.clientPKIPath = "/nonexistent-\(UUID().uuidString)"
        let vm = try await host.open(guest.name)
        let check = await vm.checkMigration(to: Testbed.Name.hostb.address, options: options)
        #expect(check.problems.contains { $0.code == .notSupported }, "\(check.problems)")
    }

    @Test func theRemoteSeamMakesFindsAndRemovesFilesOnTheHostOnly() async throws {
        let name = "vmdriver-mig-stor-seam-\(UUID().uuidString.prefix(6).lowercased())"
        let folder = "/var/lib/libvirt/images/\(name)/inner"
        let fromHere = "\(hosta.imagesFromHere)/\(name)/inner"
        let decoys = Decoys()
        defer {
            decoys.remove()
            try? FileManager.default.removeItem(atPath: "\(hosta.imagesFromHere)/\(name)")
            try? FileManager.default.removeItem(atPath: "/var/lib/libvirt/images/\(name)")
        }
        // Here, the same folder with a file in it: the host's must not be mistaken for it.
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try decoys.plant("\(folder)/clone.xml")
        let host = try await Host.connect(hosta.uri)
        defer { Task { try? await host.close() } }
        #expect(host.storage is RemoteStorage)
        let storage = host.storage
        // Expectations on this task, not in the pool's threads.
        let (before, made, after, file, written) = try await host.blocking("seam") { _ in
            let before = storage.kind(of: folder)
            let made = try storage.makeFolder(folder)
            let after = storage.kind(of: folder)
            var written = false
            try storage.write(Data("<domain/>".utf8), to: "\(folder)/clone.xml") { written = true }
            return (before, made, after, storage.kind(of: "\(folder)/clone.xml"), written)
        }
        #expect(before == .missing)
        #expect(made)
        #expect(after == .directory)
        #expect(file == .other)
        #expect(written)
        #expect(FileManager.default.contents(atPath: "\(fromHere)/clone.xml") == Data("<domain/>".utf8))
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(fromHere)/clone.xml")
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        let gone = try await host.blocking("seam") { _ in
            try storage.delete("\(folder)/clone.xml")
            try storage.delete(folder)
            return storage.kind(of: folder)
        }
        #expect(gone == .missing)
        #expect(!FileManager.default.fileExists(atPath: fromHere))
        #expect(decoys.touched().isEmpty, "local files were touched: \(decoys.touched())")
        let connection = try Testbed.connection(hosta)
        defer { try? connection.close() }
        let pools = try connection.listAllStoragePools().map { try $0.name() }
        #expect(pools.allSatisfy { !$0.hasPrefix("vmdriver-") }, "pools left on hosta: \(pools)")
    }
}
