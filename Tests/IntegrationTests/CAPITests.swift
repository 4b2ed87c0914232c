import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// The C API as a C programmer uses it: libvmdriver.so installed by scripts/install-c-api.sh,
/// programs built with `cc prog.c $(pkg-config --cflags --libs vmdriver)`, run against the real
/// libvirt host (and the testbed for CIM's migration).
@Suite("The C API (libvmdriver.so)", .serialized, .enabled(if: Integration.enabled, "needs scripts/test.sh (libvirtd, fixtures)"))
struct CAPITests {
    /// Installs the library built beside vmctl into a prefix of its own and builds `program`
    /// (from Tests/CPrograms) with `values` put in for its @PLACEHOLDERS@; returns the binary.
    static func build(_ program: String, _ values: [String: String], in folder: URL) throws -> String {
        let prefix = folder.appendingPathComponent("prefix").path
        if !FileManager.default.fileExists(atPath: "\(prefix)/lib/pkgconfig/vmdriver.pc") {
            let buildDir = URL(fileURLWithPath: VMCtl.path).deletingLastPathComponent().path
            try run("bash", [packageRoot.appendingPathComponent("scripts/install-c-api.sh").path, "--build-dir", buildDir, prefix])
        }
        var source = try String(
            contentsOf: packageRoot.appendingPathComponent("Tests/CPrograms/\(program).c"), encoding: .utf8)
        for (key, value) in values { source = source.replacingOccurrences(of: key, with: value) }
        let file = folder.appendingPathComponent("\(program).c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        let flags = try run("env", ["PKG_CONFIG_PATH=\(prefix)/lib/pkgconfig", "pkg-config", "--cflags", "--libs", "vmdriver"])
        let binary = folder.appendingPathComponent(program).path
        try run("cc", ["-Wall", "-Werror", "-o", binary, file.path] + flags.split(whereSeparator: \.isWhitespace).map(String.init))
        return binary
    }

    /// Runs a built program; returns its exit status and stdout.
    static func execute(_ binary: String, _ arguments: [String] = []) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A VMware machine: the boot-sector guest in a monolithicSparse vmdk, with a .vmx.
    static func vmwareMachine(in folder: URL, name: String, uuid: UUID) throws -> String {
        let disk = folder.appendingPathComponent("\(name).vmdk").path
        try run("qemu-img", [
            "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse",
            Integration.fixtures.appendingPathComponent("bootsector.img").path, disk,
        ])
        let vmx = folder.appendingPathComponent("\(name).vmx").path
        try """
        .encoding = "UTF-8"
        config.version = "8"
        virtualHW.version = "19"
        displayName = "\(name)"
        guestOS = "other"
        memsize = "16"
        numvcpus = "1"
        uuid.bios = "\(VMXMachine.vmwareUUID(uuid))"
        ide0:0.present = "TRUE"
        ide0:0.fileName = "\(name).vmdk"
        serial0.present = "TRUE"
        serial0.fileType = "file"
        serial0.fileName = "\(name)-serial.log"
        tools.syncTime = "FALSE"

        """.write(toFile: vmx, atomically: true, encoding: .utf8)
        return vmx
    }

    /// This host's domains whose names start with `prefix`.
    static func domains(prefix: String) throws -> [String] {
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        return try connection.listAllDomains().map { try $0.name() }.filter { $0.hasPrefix(prefix) }.sorted()
    }

    static func removeDomain(_ name: String, uri: String = Integration.uri) {
        guard let connection = try? Connection(uri: uri) else { return }
        defer { try? connection.close() }
        guard let domain = try? connection.lookupDomain(name: name) else { return }
        try? domain.destroy()
        try? domain.undefine([.snapshotsMetadata, .managedSave])
    }

    /// VMware's own examples for VixVM_Open and VixVM_Clone, with only their paths changed:
    /// the .vmx opens as a VM, the linked clone is made in the folder of its .vmx path, and it
    /// powers on and boots; opening the clone's path finds the clone.
    @Test func vixSeedExamplesOpenCloneAndPowerOn() async throws {
        let folder = URL(fileURLWithPath: "/var/lib/libvirt/images/vmdriver-capi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let name = "vmdriver-vix-\(UUID().uuidString.prefix(6).lowercased())"
        defer {
            Self.removeDomain("\(name)Clone")
            Self.removeDomain(name)
            try? FileManager.default.removeItem(at: folder)
        }
        let uuid = UUID()
        let vmx = try Self.vmwareMachine(in: folder, name: name, uuid: uuid)
        let cloneVMX = folder.appendingPathComponent("vm2/\(name)Clone.vmx").path

        let open = try Self.build("vix_open", ["@VMX@": vmx], in: folder)
        let opened = try Self.execute(open)
        #expect(opened.status == 0, "VixVM_Open example: \(opened.output)")
        let connection = try Connection(uri: Integration.uri)
        defer { try? connection.close() }
        let source = try connection.lookupDomain(name: name)
        #expect(try source.uuid() == uuid, "uuid.bios is the VM's UUID")

        let clone = try Self.build("vix_clone", ["@VMX@": vmx, "@CLONE_VMX@": cloneVMX], in: folder)
        let cloned = try Self.execute(clone)
        #expect(cloned.status == 0, "VixVM_Clone example: \(cloned.output)")
        let made = try connection.lookupDomain(name: "\(name)Clone")
        #expect(try made.isActive(), "the clone powered on")
        let overlay = folder.appendingPathComponent("vm2/\(name)Clone-hda.qcow2").path
        #expect(try backingFile(of: overlay) == folder.appendingPathComponent("\(name).vmdk").path)
        // It boots: the boot sector prints its banner on the serial port.
        let log = SerialLog(url: folder.appendingPathComponent("vm2/\(name)Clone-serial0.log"))
        #expect(await Integration.waitFor(30) { log.lines().contains("VMDRIVER-BOOT") }, "clone's serial: \(log.lines())")
        // Open again, now with the clone's path: the same program finds the clone.
        let reopen = try Self.build("vix_open", ["@VMX@": cloneVMX], in: folder.appendingPathComponent("vm2"))
        #expect(try Self.execute(reopen).status == 0)
        #expect(try Self.domains(prefix: name).count == 2, "opening the clone's path registered nothing new")
        // The parent was never changed: the vmdk is still its disk, and it is shut off.
        #expect(try !source.isActive())
    }

    /// A missing .vmx: VIX_E_FILE_NOT_FOUND (4), nothing registered.
    @Test func vixOpenOfAMissingFileIsFileNotFound() throws {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vmdriver-capi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let before = try Self.domains(prefix: "")
        let open = try Self.build("vix_open", ["@VMX@": folder.appendingPathComponent("none.vmx").path], in: folder)
        let result = try Self.execute(open)
        #expect(result.status == 1)
        #expect(result.output.hasPrefix("err=4 "), "\(result.output)")
        #expect(try Self.domains(prefix: "") == before)
    }
}
