import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

#if canImport(Glibc)
    import Glibc
#endif

/// `vmctl convert` on qemu:///system: what it refuses, and Ctrl-C mid-copy.
@Suite("Disk conversion on qemu:///system", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh"))
struct ConvertTests {
    /// A running VM is code 5, a format VMDriver does not write code 4, and neither leaves a
    /// file or changes the definition. Then Ctrl-C while a 768 MiB disk is copied: exit 2
    /// saying where the VM is, no copy and no copy process left, the VM on its old disks.
    @Test func refusalsAndCtrlCLeaveTheVMAsItWas() async throws {
        let sandbox = try Sandbox("convert")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(path)
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let domain = try connection.lookupDomain(name: vm.name)
        let definition = try domain.xmlDescription([.inactive])
        func files() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).filter { $0 != "serial.log" }.sorted()
        }
        let before = try files()

        let format = try VMCtl.run(["-c", Integration.uri, "convert", vm.name, "--format", "vhdx"])
        #expect(format.status == 4, "\(format.stderr)")
        #expect(format.stderr.contains("'vhdx'"), "\(format.stderr)")
        try await vm.start()
        let running = try VMCtl.run(["-c", Integration.uri, "convert", vm.name])
        #expect(running.status == 5, "\(running.stderr)")
        #expect(running.stderr.contains("shut it down first"), "\(running.stderr)")
        try await vm.destroy()
        #expect(try files() == before)

        let command = try VMCtl.Terminal(["-c", Integration.uri, "convert", vm.name])
        defer { command.cleanUp() }
        try #require(
            await Integration.waitFor(60) { !copyProcesses(reading: big.path).isEmpty },
            "the copy never started: \(command.stderr)")
        command.interrupt()
        let status = await command.wait(seconds: 15)
        #expect(status == 2, "vmctl exits 2 after Ctrl-C: \(command.stderr)")
        #expect(command.stderr.contains("cancel"), "\(command.stderr)")
        #expect(command.stderr.contains("shut off"), "says where the VM is: \(command.stderr)")
        #expect(copyProcesses(reading: big.path).isEmpty, "the copy process is gone")
        #expect(try files() == before, "no copy left")
        // The record the conversion held leaves an empty <metadata/> behind, nothing else.
        let after = try domain.xmlDescription([.inactive]).replacingOccurrences(of: "  <metadata/>\n", with: "")
        #expect(after == definition, "\(after.split(separator: "\n").filter { !definition.contains($0) })")
        #expect(try await vm.state() == .shutOff)
    }

    /// vmctl killed (SIGKILL, no rollback) mid-copy: its record stays on the VM, a new
    /// conversion is code 5 naming it, and `vmctl abort` removes the partial copies and the
    /// record; the conversion then runs.
    @Test func abortAfterAKilledConversionRemovesItsCopies() async throws {
        let sandbox = try Sandbox("convert-kill")
        defer { sandbox.cleanUp() }
        let (path, big) = try sandbox.writeBootSectorXML(domainType: "qemu", randomDiskMiB: 768)
        let host = try await Host.connect(Integration.uri)
        defer { Task { try? await host.close() } }
        let vm = try await host.open(path)
        let before = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted()

        let command = try VMCtl.Terminal(["-c", Integration.uri, "convert", vm.name])
        defer { command.cleanUp() }
        try #require(
            await Integration.waitFor(60) { !copyProcesses(reading: big.path).isEmpty },
            "the copy never started: \(command.stderr)")
        command.interrupt(SIGKILL)
        _ = await command.wait(seconds: 10)
        #expect(await Integration.waitFor(10) { copyProcesses(reading: big.path).isEmpty })
        let partial = sandbox.directory.appendingPathComponent("big.qcow2").path
        #expect(FileManager.default.fileExists(atPath: partial), "the killed copy is left")
        let busy = try VMCtl.run(["-c", Integration.uri, "convert", vm.name])
        #expect(busy.status == 5, "\(busy.stderr)")
        #expect(busy.stderr.contains("disk conversion"), "\(busy.stderr)")

        let abort = try VMCtl.run(["-c", Integration.uri, "abort", vm.name])
        #expect(abort.status == 0, "\(abort.stderr)")
        #expect(abort.stdout.contains(partial), "\(abort.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path).sorted() == before)
        let converted = try await vm.convertDisks().wait()
        #expect(converted.converted.map(\.target).sorted() == ["hda", "hdb"])
        #expect(try await vm.details().disks.allSatisfy { $0.format == "qcow2" })
    }
}
