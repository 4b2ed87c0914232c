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
            try run(
                "bash", [packageRoot.appendingPathComponent("scripts/install-c-api.sh").path, "--build-dir", buildDir, prefix])
        }
        var source = try String(
            contentsOf: packageRoot.appendingPathComponent("Tests/CPrograms/\(program).c"), encoding: .utf8)
        for (key, value) in values { source = source.replacingOccurrences(of: key, with: value) }
        let file = folder.appendingPathComponent("\(program).c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        let flags = try run("env", ["PKG_CONFIG_PATH=\(prefix)/lib/pkgconfig", "pkg-config", "--cflags", "--libs", "vmdriver"])
        let binary = folder.appendingPathComponent(program).path
        try run(
            "cc", ["-Wall", "-Werror", "-o", binary, file.path] + flags.split(whereSeparator: \.isWhitespace).map(String.init))
        return binary
    }

    /// Where scripts/test.sh installed the release C API.
    static let installedCAPI = ProcessInfo.processInfo.environment["VMDRIVER_C_API_PREFIX"]

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

    /// A VMware machine: the boot-sector guest in a vmdk of `subformat` (`disk.vmdk`), with a
    /// .vmx named after `name` whose serial port writes `serial.log`; `extra` lines are added.
    static func vmwareMachine(
        in folder: URL, name: String, uuid: UUID, subformat: String = "monolithicSparse", extra: String = ""
    ) throws -> String {
        try run(
            "qemu-img",
            [
                "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=\(subformat)",
                Integration.fixtures.appendingPathComponent("bootsector.img").path,
                folder.appendingPathComponent("disk.vmdk").path,
            ])
        let vmx = folder.appendingPathComponent("\(name).vmx").path
        try """
        .encoding = "UTF-8"
        config.version = "8"
        virtualHW.version = "19"
        displayName = "\(name)"
        guestOS = "other"
        memsize = "16"
        uuid.bios = "\(VMXMachine.vmwareUUID(uuid))"
        ide0:0.present = "TRUE"
        ide0:0.fileName = "disk.vmdk"
        serial0.present = "TRUE"
        serial0.fileType = "file"
        serial0.fileName = "serial.log"
        \(extra)
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
        #expect(try backingFile(of: overlay) == folder.appendingPathComponent("disk.vmdk").path)
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

    /// Eight C threads at once, each connecting, opening, reading properties and releasing
    /// (25 rounds each, on test:///default): every round reads the VM back right.
    @Test func vixCallsFromEightThreadsAtOnce() throws {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "vmdriver-capi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = try Self.build("vix_threads", [:], in: folder)
        let result = try Self.execute(binary, ["test:///default", "test"])
        #expect(result.status == 0 && result.output.contains("ok 200"), "\(result.output)")
    }

    /// What a user installs: `scripts/install-c-api.sh PREFIX` builds the release library, which
    /// exports every function the headers declare (a release build hides what is not public),
    /// has its SONAME, and runs the eight-thread program. scripts/test.sh installs it (a build
    /// started from inside `swift test` would wait for ever on .build's lock) and names the prefix.
    @Test(
        .enabled(if: CAPITests.installedCAPI != nil, "scripts/test.sh installs the release C API and sets VMDRIVER_C_API_PREFIX"))
    func theInstalledReleaseLibraryExportsEveryDeclaredFunction() throws {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "vmdriver-rel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let prefix = try #require(Self.installedCAPI)
        let library = "\(prefix)/lib/libvmdriver.so"
        let exported = Set(
            try run("nm", ["-D", "--defined-only", library]).split(separator: "\n").compactMap { line -> String? in
                let parts = line.split(separator: " ")
                return parts.count == 3 && parts[1] == "T" ? String(parts[2]) : nil
            })
        var declared: Set<String> = []
        let include = URL(fileURLWithPath: "\(prefix)/include")
        for case let file as URL in FileManager.default.enumerator(at: include, includingPropertiesForKeys: nil)!
        where file.pathExtension == "h" {
            let text = try String(contentsOf: file, encoding: .utf8)
            // The SDK's static inline helper (prl_result_to_string) is lowercase: not matched.
            declared.formUnion(text.matches(of: /\b((?:Vix|Prl|CIM_|SdkWrap_)\w+)\s*\(/).map { String($0.1) })
        }
        declared.subtract(["VixEventProc"])
        #expect(declared.count > 60, "\(declared.count) declared")
        #expect(declared.subtracting(exported).sorted() == [], "declared, not exported")
        #expect(try run("readelf", ["-d", library]).contains("libvmdriver.so.1"))
        let prebuilt = folder.appendingPathComponent("program")
        try FileManager.default.createDirectory(at: prebuilt, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: prebuilt.appendingPathComponent("prefix"), withDestinationURL: URL(fileURLWithPath: prefix))
        let binary = try Self.build("vix_threads", [:], in: prebuilt)
        let result = try Self.execute(binary, ["test:///default", "test"])
        #expect(result.status == 0 && result.output.contains("ok 200"), "\(result.output)")
    }

    /// VixVM_CreateSnapshot, then VixVM_RevertToSnapshot: refused with VIX_E_VM_IS_RUNNING while
    /// the VM runs, then, powered off, the VM is back on a new overlay on its vmdk, the overlay
    /// it wrote to since is gone, it stays off until powered on, and it boots.
    @Test func vixRevertsAShutOffVMAndRefusesARunningOne() async throws {
        let folder = URL(fileURLWithPath: "/var/lib/libvirt/images/vmdriver-capi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let name = "vmdriver-vixsnap-\(UUID().uuidString.prefix(6).lowercased())"
        defer {
            Self.removeDomain(name)
            try? FileManager.default.removeItem(at: folder)
        }
        let vmx = try Self.vmwareMachine(in: folder, name: name, uuid: UUID())
        let program = try Self.build("vix_snapshot", ["@VMX@": vmx], in: folder)
        let taken = try Self.execute(program, ["snapshot"])
        #expect(taken.status == 0, "\(taken.output)")
        let serial = folder.appendingPathComponent("serial.log")
        #expect(await Integration.waitFor(30) { SerialLog(url: serial).lines().contains("VMDRIVER-BOOT") })
        let written = folder.appendingPathComponent("\(name)-hda-before.qcow2").path
        #expect(try backingFile(of: written) == folder.appendingPathComponent("disk.vmdk").path)
        // The next banner can only come from the boot after the revert.
        try FileManager.default.removeItem(at: serial)

        let reverted = try Self.execute(program, ["revert"])
        let facts = CIMCAPITests.facts(reverted.output)
        #expect(reverted.status == 0, "\(reverted.output)")
        #expect(facts["revert-running"] == "3007", "VIX_E_VM_IS_RUNNING: \(reverted.output)")
        #expect(facts["revert"] == "0")
        #expect(facts["state"] == "2", "VIX_POWERSTATE_POWERED_OFF after the revert")
        #expect(facts["missing"] == "13003", "VIX_E_SNAPSHOT_NOTFOUND")
        #expect(facts["on"] == "0")
        let host = try await Host.connect(Integration.uri)
        let disk = try #require(try await host.open(name).details().disks.first)
        try await host.close()
        #expect(disk.path == folder.appendingPathComponent("\(name)-hda-before-2.qcow2").path)
        #expect(try backingFile(of: disk.path ?? "") == folder.appendingPathComponent("disk.vmdk").path)
        #expect(!FileManager.default.fileExists(atPath: written), "the overlay written after the snapshot is discarded")
        #expect(await Integration.waitFor(30) { SerialLog(url: serial).lines().contains("VMDRIVER-BOOT") })
    }

    /// A missing .vmx: VIX_E_FILE_NOT_FOUND (4), nothing registered.
    @Test func vixOpenOfAMissingFileIsFileNotFound() throws {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "vmdriver-capi-\(UUID().uuidString.prefix(8))")
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

/// CIM's MigrateVirtualSystemToHost from C, between the testbed's two hosts.
@Suite("The C API's CIM migration", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct CIMCAPITests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    func program() throws -> (binary: String, folder: URL) {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "vmdriver-cim-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return (try CAPITests.build("cim_migrate", [:], in: folder), folder)
    }

    /// The facts the program printed, by name (`state=7 percent=100 code=0` gives three).
    static func facts(_ output: String) -> [String: String] {
        var facts: [String: String] = [:]
        for line in output.split(separator: "\n") {
            for pair in line.split(separator: " ") where pair.contains("=") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if facts[parts[0]] == nil { facts[parts[0]] = parts.count > 1 ? parts[1] : "" }
            }
        }
        return facts
    }

    /// CIM-XML setting data, 4096, a job that reaches Completed (7) at 100 %: the guest runs on
    /// hostb and nowhere else, and never rebooted. Then a DestinationHost that is no host name
    /// is 4 with the guest left where it is.
    @Test func migratesWithCIMXMLSettingDataAndRefusesABadDestination() async throws {
        let guest = TestbedGuest("cim", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let (binary, folder) = try program()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = "root/virtualization/v2:Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"\(guest.name)\""

        let moved = try CAPITests.execute(binary, [Testbed.Name.hosta.uri, path, Testbed.Name.hostb.address, "migrate"])
        let facts = Self.facts(moved.output)
        #expect(moved.status == 0, "\(moved.output)")
        #expect(facts["check"] == "0" && facts["migratable"] == "1", "\(moved.output)")
        #expect(facts["migrate"] == "4096", "\(moved.output)")
        #expect(
            facts["wait"] == "0" && facts["state"] == "7" && facts["percent"] == "100" && facts["code"] == "0", "\(moved.output)")
        #expect(moved.output.contains("<VALUE>2</VALUE>"), "the capabilities list MigrateVirtualSystemToHost as asynchronous")
        #expect(try guest.state(on: .hostb) == .running)
        #expect(try guest.state(on: .hosta) == nil, "the source keeps no definition")
        let beats = guest.log.heartbeats().count
        #expect(await guest.keepsBeating(after: beats), "the guest runs on after the move")

        let refused = try CAPITests.execute(binary, [Testbed.Name.hostb.uri, guest.name, "not a host!", "migrate"])
        #expect(Self.facts(refused.output)["migrate"] == "4", "\(refused.output)")
        #expect(refused.output.contains("DestinationHost") || refused.output.contains("not a host"), "\(refused.output)")
        #expect(try guest.state(on: .hostb) == .running)
    }

    /// RequestStateChange(4, Terminate) while the move runs: 0, the job ends Terminated (8), the
    /// guest runs on the source and the target holds no trace of it.
    @Test func terminateMidMoveLeavesTheSourceRunning() async throws {
        let guest = TestbedGuest("cimstop", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta)
        let (binary, folder) = try program()
        defer { try? FileManager.default.removeItem(at: folder) }
        // 2 MiB/s: the guest's memory takes far longer than the second before the terminate.
        let stopped = try CAPITests.execute(
            binary, [Testbed.Name.hosta.uri, guest.name, Testbed.Name.hostb.address, "cancel", "2"])
        let facts = Self.facts(stopped.output)
        #expect(facts["migrate"] == "4096", "\(stopped.output)")
        #expect(facts["before-terminate"] == "4", "\(stopped.output)")
        #expect(facts["terminate"] == "0" && facts["state"] == "8", "\(stopped.output)")
        #expect(try guest.state(on: .hosta) == .running)
        #expect(try guest.state(on: .hostb) == nil)
        let beats = guest.log.heartbeats().count
        #expect(await guest.keepsBeating(after: beats), "the guest runs on on the source")
    }
}

/// The Parallels SDK's PrlVm_MigrateEx from C, between the testbed's two hosts.
@Suite("The C API's Parallels migration", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct PrlCAPITests {
    /// PVMT_HOT_MIGRATION | PVMSL_LOW_SECURITY to hostb, then PVMSL_HIGH_SECURITY back: each job's
    /// return code is PRL_ERR_SUCCESS and the guest ticks on where it went. The boot-sector guest
    /// runs under KVM here, so it moves live (TCG guests move warm, see Capabilities.tcgLive).
    /// Then an invalid security level is the SDK's PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL, with
    /// nothing moved.
    @Test func migratesHotThereAndBackAndRefusesABadLevel() async throws {
        let local = try await Host.connect(Integration.uri)
        let kvm = try await local.capabilities().accelerators.first { $0.name == "kvm" }?.runsGuests.isAvailable == true
        try await local.close()
        try #require(kvm, "needs KVM for real-mode guests (the accelerator probe says no)")
        let guest = TestbedGuest("prl", domainType: "kvm")
        defer { guest.cleanUp() }
        try await guest.bootBootSector(on: .hosta, domainType: "kvm")
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "vmdriver-prl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = try CAPITests.build("prl_migrate", [:], in: folder)
        func ticks() -> Int { guest.log.lines().filter { $0.hasPrefix("tick") }.count }
        setenv("VMDRIVER_PKIPATH", Testbed.clientPKI, 1)
        defer { unsetenv("VMDRIVER_PKIPATH") }

        let there = try CAPITests.execute(binary, [Testbed.Name.hosta.uri, guest.name, Testbed.Name.hostb.address, "low"])
        #expect(there.status == 0, "\(there.output)")
        #expect(there.output.contains("found \(guest.name) {"), "the UUID comes in braces: \(there.output)")
        #expect(there.output.contains("retcode=0x00000000 PRL_ERR_SUCCESS progress=100"), "\(there.output)")
        #expect(try guest.hosts() == [.hostb] && guest.state(on: .hostb) == .running)
        var before = ticks()
        #expect(await Integration.waitFor(10) { ticks() > before + 1 }, "the guest ticks on on hostb")

        let back = try CAPITests.execute(binary, [Testbed.Name.hostb.uri, guest.name, Testbed.Name.hosta.address, "high"])
        #expect(back.output.contains("retcode=0x00000000 PRL_ERR_SUCCESS"), "\(back.output)")
        #expect(try guest.hosts() == [.hosta] && guest.state(on: .hosta) == .running)
        before = ticks()
        #expect(await Integration.waitFor(10) { ticks() > before + 1 }, "the guest ticks on on hosta")

        let refused = try CAPITests.execute(binary, [Testbed.Name.hosta.uri, guest.name, Testbed.Name.hostb.address, "bad"])
        #expect(refused.output.contains("PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL"), "\(refused.output)")
        #expect(try guest.hosts() == [.hosta] && guest.state(on: .hosta) == .running)
        // The guest never restarted: one banner in its log.
        #expect(guest.log.lines().filter { $0 == "VMDRIVER-BOOT" }.count == 1)
    }
}
