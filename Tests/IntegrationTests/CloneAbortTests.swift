import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

/// A clone whose vmctl dies mid-copy (SIGKILL: it cannot roll back) leaves its record on the
/// source, and `vmctl abort SOURCE` finishes its rollback from it; a clone whose vmctl still
/// runs is ended by `vmctl abort` through that vmctl (SIGTERM), which rolls back by itself.
@Suite("Clones ended by vmctl abort", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct CloneAbortTests {
    /// The files the domain's disks point at now, read from libvirt (not the code under test).
    func diskPaths(_ domain: Domain) throws -> [String] {
        let xml = try domain.xmlDescription()
        let regex = try NSRegularExpression(pattern: "<source file='([^']+)'")
        return regex.matches(in: xml, range: NSRange(xml.startIndex..., in: xml)).compactMap {
            Range($0.range(at: 1), in: xml).map { String(xml[$0]) }
        }
    }

    /// A full clone of a running VM, its vmctl killed mid-copy: the source runs on the temporary
    /// overlays of the freeze, the copy process goes on, half a copy is on disk. `vmctl jobs`
    /// shows the dead clone; `vmctl abort` stops the copy, merges the overlays back, removes
    /// every file of the clone: the folder holds what it held, the source runs on its own disks
    /// with its data unchanged, no definition of the clone, no record left.
    @Test func aFullCloneWhoseVmctlWasKilledIsRolledBackByAbort() async throws {
        let sandbox = try Sandbox("killed-clone")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let source = try await host.open(path)
        try await source.start()
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: source.name)
        let disks = try diskPaths(domain)
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let sum = try run("sha256sum", [big.path])
        let clone = "\(sandbox.name)-c"

        let command = try await VMCtl.Terminal.fullClone(of: source.name, as: clone, copying: big)
        defer { command.cleanUp() }
        kill(command.pid, SIGKILL)
        #expect(await command.wait(seconds: 10) == 128 + SIGKILL)
        #expect(try diskPaths(domain) != disks, "the source runs on the freeze's overlays")

        let jobs = try VMCtl.run(["-c", Integration.uri, "jobs", source.name])
        #expect(jobs.status == 0, "\(jobs.stderr)")
        #expect(jobs.stdout.contains("clone '\(clone)'"), "\(jobs.stdout)")
        #expect(jobs.stdout.contains("(gone)"), "\(jobs.stdout)")

        let abort = try VMCtl.run(["-c", Integration.uri, "abort", source.name])
        #expect(abort.status == 0, "\(abort.stdout)\n\(abort.stderr)")
        #expect(abort.stdout.contains("merged"), "\(abort.stdout)")
        print("vmctl abort:\n\(abort.stdout)")

        #expect(copyProcesses(reading: big.path).isEmpty, "no copy process left")
        #expect(try domain.state().state == .running, "the source still runs")
        #expect(try diskPaths(domain) == disks, "the source runs on its own disks again")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == files)
        #expect((try? connection.lookupDomain(name: clone)) == nil, "no definition of the clone")
        #expect(try !domain.xmlDescription().contains("vmdclone"), "no record left")
        #expect(try run("sha256sum", [big.path]) == sum, "the source's data unchanged")
        // Nothing more to abort.
        #expect(try VMCtl.run(["-c", Integration.uri, "abort", source.name]).status == 5)
    }

    /// `vmctl abort SOURCE` while another vmctl makes a full clone of it: that vmctl is sent
    /// SIGTERM, exits 2 having rolled back, and nothing of the clone is left.
    @Test func abortEndsACloneAnotherVmctlIsMaking() async throws {
        let sandbox = try Sandbox("abort-clone")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let source = try await host.open(path)
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()
        let clone = "\(sandbox.name)-c"

        let command = try await VMCtl.Terminal.fullClone(of: source.name, as: clone, copying: big)
        defer { command.cleanUp() }
        let abort = try VMCtl.run(["-c", Integration.uri, "abort", source.name])
        #expect(abort.status == 0, "\(abort.stdout)\n\(abort.stderr)")
        #expect(abort.stdout.contains("SIGTERM"), "\(abort.stdout)")
        #expect(await command.wait(seconds: 15) == 2, "the cloning vmctl rolled back and exited 2: \(command.stderr)")
        #expect(command.stderr.contains("cancel"), "\(command.stderr)")
        #expect(copyProcesses(reading: big.path).isEmpty, "no copy process left")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == files)
        await #expect(throws: VMDriverError.self, "no definition of the clone") { try await host.open(clone) }
    }
}
