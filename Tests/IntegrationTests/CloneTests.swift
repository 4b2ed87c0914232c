import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Clones of the Linux fixture guest on qemu:///system: what the clone sees, what reaches whom,
/// and that failures leave nothing behind.
@Suite("Clones on qemu:///system", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct CloneTests {
    let host: VMDriver.Host
    let type: String

    init() async throws {
        host = try await Host.connect(Integration.uri)
        type = try #require(try await host.capabilities().linuxDomainType)
    }

    /// A source VM in a sandbox that has booted once, so its disk holds "boot 1 tag=src".
    func bootedSource(_ sandbox: Sandbox, nic: Bool = false, leaveRunning: Bool = false) async throws -> VirtualMachine {
        try sandbox.copyDataDisk()
        let path = try sandbox.writeLinuxXML(domainType: type, tag: "src")
        if nic {
            var xml = try String(contentsOfFile: path, encoding: .utf8)
            xml = xml.replacingOccurrences(
                of: "</devices>",
                with: "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface></devices>")
            try xml.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let vm = try await host.open(path)
        try await vm.start()
        #expect(await sandbox.waitFor(60) { sandbox.markersSeenByGuest() == ["boot 1 tag=src"] })
        if !leaveRunning {
            #expect(try await vm.shutdown(timeout: .seconds(60)).wait() == .shutOff)
        }
        return vm
    }

    /// Gives a clone its own kernel tag, so its marker lines can be told from the source's.
    func retag(_ vm: VirtualMachine, _ tag: String) throws {
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: vm.name)
        let xml = try domain.xmlDescription([.inactive]).replacingOccurrences(of: "vmdriver.tag=src", with: "vmdriver.tag=\(tag)")
        _ = try connection.defineDomain(xml: xml)
    }

    func boot(_ vm: VirtualMachine, log: SerialLog, expecting markers: [String]) async throws {
        try await vm.start()
        #expect(await Integration.waitFor(90) { log.markers() == markers }, "\(vm.name) printed \(log.lines().suffix(8))")
    }

    func diskPaths(_ vm: VirtualMachine) async throws -> [String] {
        try await vm.details().disks.flatMap { [$0.path ?? ""] + ($0.backingChain ?? []).map(\.path) }
    }

    @Test func linkedCloneOfAShutOffVM() async throws {
        let sandbox = try Sandbox("linked-off")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let job = try await source.clone(name: "\(sandbox.name)-c", type: .linked)
        let clone = try await job.wait()
        #expect(job.state == .completed)

        // The clone is an overlay on the frozen image; the source moved to its own overlay.
        let cloneDisk = try #require(try await clone.details().disks.first)
        #expect(cloneDisk.path == sandbox.directory.appendingPathComponent("\(clone.name)-vda.qcow2").path)
        #expect(cloneDisk.backingChain?.map(\.path) == [sandbox.disk.path])
        let chain = try run("qemu-img", ["info", "-U", "--backing-chain", cloneDisk.path!])
        #expect(chain.contains("backing file: \(sandbox.disk.path)"))
        let sourceDisk = try #require(try await source.details().disks.first)
        #expect(sourceDisk.path != sandbox.disk.path)
        #expect(sourceDisk.backingChain?.map(\.path) == [sandbox.disk.path])

        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
        // The clone's write stayed in its overlay: neither the base nor the source saw it.
        #expect(try sandbox.markersOnDisk(sandbox.disk) == ["boot 1 tag=src"])
        #expect(try sandbox.markersOnDisk(URL(fileURLWithPath: sourceDisk.path!)) == ["boot 1 tag=src"])
        // And the source's next boot does not reach the clone.
        try await boot(source, log: sandbox.log, expecting: ["boot 1 tag=src", "boot 2 tag=src"])
        try await source.destroy()
        #expect(try sandbox.markersOnDisk(URL(fileURLWithPath: cloneDisk.path!)) == ["boot 1 tag=src", "boot 2 tag=clone"])
        #expect(try sandbox.markersOnDisk(sandbox.disk) == ["boot 1 tag=src"])

        // A full clone of the linked clone flattens its chain into one standalone image.
        let copy = try await clone.clone(name: "\(sandbox.name)-full", type: .full).wait()
        let copyDisk = try #require(try await copy.details().disks.first)
        #expect(copyDisk.backingChain == [])
        #expect(try sandbox.markersOnDisk(URL(fileURLWithPath: copyDisk.path!)) == ["boot 1 tag=src", "boot 2 tag=clone"])
        #expect(try await source.linkedClones() == [clone.name])
    }

    @Test func linkedCloneOfARunningVM() async throws {
        let sandbox = try Sandbox("linked-run")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox, leaveRunning: true)
        let before = sandbox.heartbeats().last ?? 0
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        // The source never stopped: same boot, heartbeat still climbing.
        #expect(try await source.state() == .running)
        #expect(await sandbox.waitFor(20) { (sandbox.heartbeats().last ?? 0) > before + 1 })
        let beats = sandbox.heartbeats()
        #expect(beats == Array(1...beats.count))
        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
        try await source.destroy()
        let sourceDisk = try #require(try await source.details().disks.first?.path)
        #expect(try sandbox.markersOnDisk(URL(fileURLWithPath: sourceDisk)) == ["boot 1 tag=src"])
    }

    @Test func linkedCloneFromANamedSnapshotSeesThatMomentOnly() async throws {
        let sandbox = try Sandbox("snap")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let snapshot = try await source.createSnapshot(name: "before-second-boot")
        #expect(snapshot.disks.first?.frozenImage == sandbox.disk.path)
        #expect(try await source.snapshots().map(\.name) == ["before-second-boot"])
        // A later write to the source...
        try await boot(source, log: sandbox.log, expecting: ["boot 1 tag=src", "boot 2 tag=src"])
        try await source.destroy()
        // ...is not in a clone made from the snapshot.
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked, snapshot: "before-second-boot").wait()
        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
        let missing = await #expect(throws: VMDriverError.self) {
            try await source.clone(name: "\(sandbox.name)-x", type: .linked, snapshot: "no-such-snapshot")
        }
        #expect(missing?.code == .invalidParameter)
    }

    @Test func fullCloneOfAShutOffVM() async throws {
        let sandbox = try Sandbox("full-off")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let job = try await source.clone(name: "\(sandbox.name)-c", type: .full)
        let clone = try await job.wait()
        #expect(job.latestProgress?.bytesTotal ?? 0 > 0)
        let cloneDisk = try #require(try await clone.details().disks.first)
        #expect(cloneDisk.backingChain == [])
        #expect(Set(try await diskPaths(clone)).isDisjoint(with: try await diskPaths(source)))
        // Sparse kept: about the source's allocation (QEMU preallocates, so the copy may be
        // smaller, never bigger), nowhere near the 64 MiB virtual size.
        let sourceBytes = Double(DiskCopier.allocatedBytes(sandbox.disk.path))
        let cloneBytes = Double(DiskCopier.allocatedBytes(cloneDisk.path!))
        #expect(cloneBytes <= 1.05 * sourceBytes, "source \(sourceBytes) B, clone \(cloneBytes) B")
        #expect(cloneBytes < 64 * 1_048_576 / 10)
        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
        #expect(try sandbox.markersOnDisk() == ["boot 1 tag=src"])
    }

    @Test func fullCloneOfARunningVMNeverStopsIt() async throws {
        let sandbox = try Sandbox("full-run")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox, leaveRunning: true)
        let filesBefore = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .full).wait()
        #expect(try await source.state() == .running)
        let beats = sandbox.heartbeats()
        #expect(beats == Array(1...beats.count), "the source rebooted")
        // The source is back on its own image; the temporary overlay is gone.
        let sourceDetails = try await source.details()
        #expect(sourceDetails.disks.first?.path == sandbox.disk.path)
        #expect(sourceDetails.disks.first?.backingChain == [])
        let filesAfter = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        #expect(Set(filesAfter).subtracting(filesBefore) == ["\(clone.name)-vda.qcow2"])
        #expect(Set(try await diskPaths(clone)).isDisjoint(with: try await diskPaths(source)))
        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
        #expect(await sandbox.waitFor(10) { (sandbox.heartbeats().last ?? 0) > beats.count })
    }

    @Test func twentyConcurrentLinkedClonesAreDistinctAndAllBoot() async throws {
        let sandbox = try Sandbox("twenty")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox, nic: true)
        let prefix = sandbox.name
        let clones = try await withThrowingTaskGroup(of: VirtualMachine.self) { group in
            for index in 1...20 {
                group.addTask { try await source.clone(name: "\(prefix)-\(index)", type: .linked).wait() }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(clones.map(\.name)).count == 20)
        #expect(Set(clones.map(\.uuid)).count == 20)
        var macs: [String] = []
        for clone in clones { macs += try await clone.details().nics.compactMap(\.mac) }
        #expect(macs.count == 20)
        #expect(Set(macs + ["52:54:00:00:00:01"]).count == 21)
        for clone in clones { try await clone.start() }
        for clone in clones {
            let log = sandbox.log(ofClone: clone.name)
            #expect(await Integration.waitFor(180) { log.heartbeats().count >= 1 }, "\(clone.name) did not boot")
            #expect(log.markers()?.first == "boot 1 tag=src")
        }
        for clone in clones { try await clone.destroy() }
    }

    @Test func aSuspendedVMCannotBeLinkedCloned() async throws {
        let sandbox = try Sandbox("suspended")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox, leaveRunning: true)
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        try connection.lookupDomain(name: source.name).managedSave()
        #expect(try await source.state() == .suspendedToDisk)
        let definition = try connection.lookupDomain(name: source.name).xmlDescription([.inactive])
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let error = await #expect(throws: VMDriverError.self) {
            try await source.clone(name: "\(sandbox.name)-c", type: .linked)
        }
        #expect(error?.code == .invalidState)
        #expect(error?.message.contains("suspended to disk") == true)
        // Nothing changed.
        #expect(try connection.lookupDomain(name: source.name).xmlDescription([.inactive]) == definition)
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == files)
        #expect(try await source.snapshots().isEmpty)
        #expect((try? connection.lookupDomain(name: "\(sandbox.name)-c")) == nil)
    }

    @Test func badNamesAndTakenTargetsAreCode4AndOverwriteNothing() async throws {
        let sandbox = try Sandbox("names")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        let source = try await host.open(try sandbox.writeLinuxXML(domainType: type, tag: "src"))
        for bad in ["", "a/b", "../x", "two\nlines", "nul\u{0}byte", ".hidden", String(repeating: "x", count: 300)] {
            let error = await #expect(throws: VMDriverError.self) { try await source.clone(name: bad, type: .linked) }
            #expect(error?.code == .invalidParameter, "name \(bad.debugDescription)")
        }
        let taken = await #expect(throws: VMDriverError.self) { try await source.clone(name: source.name, type: .full) }
        #expect(taken?.code == .invalidParameter)
        #expect(taken?.message.contains("already exists") == true)
        let blocker = sandbox.directory.appendingPathComponent("\(sandbox.name)-file-vda.qcow2")
        try "keep me".write(to: blocker, atomically: true, encoding: .utf8)
        let file = await #expect(throws: VMDriverError.self) { try await source.clone(name: "\(sandbox.name)-file", type: .full) }
        #expect(file?.code == .invalidParameter)
        #expect(try String(contentsOf: blocker, encoding: .utf8) == "keep me")
        // Characters special to XML are escaped, never injected.
        let odd = "\(sandbox.name)-<b>&'\""
        let clone = try await source.clone(
            name: odd, type: .linked, destination: sandbox.directory.appendingPathComponent("odd.xml").path
        ).wait()
        #expect(clone.name == odd)
        #expect(try await host.open(odd).uuid == clone.uuid)
        let written = try String(contentsOf: sandbox.directory.appendingPathComponent("odd.xml"), encoding: .utf8)
        #expect(written.contains("&lt;b&gt;&amp;"))
    }

    @Test func diskFullDuringAFullCloneLeavesNothing() async throws {
        let sandbox = try Sandbox("full-disk")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let small = sandbox.directory.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        try run("mount", ["-t", "tmpfs", "-o", "size=256k", "vmdriver-test", small.path])
        defer { _ = try? run("umount", [small.path]) }
        let sum = try run("sha256sum", [sandbox.disk.path])
        let definition = try await source.details()
        let job = try await source.clone(name: "\(sandbox.name)-c", type: .full, destination: small.path)
        let error = await #expect(throws: VMDriverError.self) { try await job.wait() }
        #expect(error?.code == .failed)
        #expect(error?.message.contains("No space left on device") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("everything it made was removed") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: small.path).isEmpty)
        await #expect(throws: VMDriverError.self) { try await host.open("\(sandbox.name)-c") }
        #expect(try run("sha256sum", [sandbox.disk.path]) == sum)
        #expect(try await source.details() == definition)
    }

    @Test func aParentWithClonesIsProtectedUntilThePromotion() async throws {
        let sandbox = try Sandbox("parent")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        #expect(try await source.linkedClones() == [clone.name])
        let refused = await #expect(throws: VMDriverError.self) { _ = try await source.delete(withStorage: true) }
        #expect(refused?.code == .invalidState)
        #expect(refused?.message.contains(clone.name) == true)
        #expect(FileManager.default.fileExists(atPath: sandbox.disk.path))

        try await clone.start()  // promoted while it runs
        #expect(await Integration.waitFor(60) { sandbox.log(ofClone: clone.name).heartbeats().count >= 1 })
        _ = try await clone.promote().wait()
        #expect(try await clone.details().disks.first?.backingChain == [])
        #expect(try await source.linkedClones() == [])
        let removed = try await source.delete(withStorage: true)
        #expect(removed.contains(sandbox.disk.path))
        #expect(!FileManager.default.fileExists(atPath: sandbox.disk.path))
        // The promoted clone still runs, and boots again with its data.
        let beats = sandbox.log(ofClone: clone.name).heartbeats().count
        #expect(await Integration.waitFor(10) { sandbox.log(ofClone: clone.name).heartbeats().count > beats })
        try await clone.destroy()
        try await boot(
            clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=src", "boot 3 tag=src"])
        try await clone.destroy()
    }

    @Test func cancellingAFullCloneMidCopyLeavesNothing() async throws {
        let sandbox = try Sandbox("cancel")
        defer { sandbox.cleanUp() }
        try sandbox.copyDataDisk()
        // A second, big disk full of data, so the copy is still going when the cancel lands.
        let big = try sandbox.makeRandomDisk(mib: 768)
        let path = try sandbox.writeLinuxXML(domainType: type, tag: "src")
        var xml = try String(contentsOfFile: path, encoding: .utf8)
        xml = xml.replacingOccurrences(
            of: "</devices>", with: Sandbox.rawDiskElement(big, target: "vdb", bus: "virtio") + "</devices>")
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        let source = try await host.open(path)
        // Running: the cancel must also merge the source's temporary overlays back.
        try await source.start()
        #expect(await sandbox.waitFor(60) { sandbox.heartbeats().count >= 1 })
        let disksBefore = try await source.details().disks
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let sum = try run("sha256sum", [big.path])

        let job = try await source.clone(name: "\(sandbox.name)-c", type: .full)
        for await progress in job.progress where (progress.bytesProcessed ?? 0) > 0 && progress.phase.contains("big.raw") {
            job.cancel()
            break
        }
        let error = await #expect(throws: VMDriverError.self) { try await job.wait() }
        #expect(job.state == .cancelled)
        #expect(error?.code == .failed)
        #expect(error?.message.contains("was cancelled") == true, "\(error?.message ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == files)
        await #expect(throws: VMDriverError.self) { try await host.open("\(sandbox.name)-c") }
        // The source never stopped and is back on its own images.
        #expect(try await source.state() == .running)
        #expect(try await source.details().disks == disksBefore)
        let beats = sandbox.heartbeats()
        #expect(beats == Array(1...beats.count))
        try await source.destroy()
        #expect(try run("sha256sum", [big.path]) == sum)
    }

    /// Where a storage pool covers the folder, the overlay is made through libvirt's storage API:
    /// the path that also works on a remote host.
    @Test func linkedCloneThroughAStoragePool() async throws {
        let sandbox = try Sandbox("pool")
        defer { sandbox.cleanUp() }
        let source = try await bootedSource(sandbox)
        let pool = sandbox.name
        try run("virsh", ["-q", "-c", Integration.uri, "pool-create-as", pool, "dir", "--target", sandbox.directory.path])
        defer { _ = try? run("virsh", ["-q", "-c", Integration.uri, "pool-destroy", pool]) }
        let clone = try await source.clone(name: "\(sandbox.name)-c", type: .linked).wait()
        let overlay = try #require(try await clone.details().disks.first?.path)
        // libvirt made it: it is a volume of the pool, with the mode VMDriver asked for.
        let volumes = try run("virsh", ["-q", "-c", Integration.uri, "vol-list", pool])
        #expect(volumes.contains(overlay))
        let attributes = try FileManager.default.attributesOfItem(atPath: overlay)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try await clone.details().disks.first?.backingChain?.map(\.path) == [sandbox.disk.path])
        try retag(clone, "clone")
        try await boot(clone, log: sandbox.log(ofClone: clone.name), expecting: ["boot 1 tag=src", "boot 2 tag=clone"])
        try await clone.destroy()
    }
}
