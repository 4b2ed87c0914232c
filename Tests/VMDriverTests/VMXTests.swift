import Foundation
import Testing

@testable import VMDriver

/// The .vmx reader and its mapping to what KVM runs, and `open` of a .vmx on test:///default.
@Suite("VMware .vmx files")
struct VMXTests {
    func parse(_ text: String, path: String = "/vms/web/web.vmx", efi: Bool = false) throws(VMDriverError) -> VMXMachine {
        try VMXMachine(VMXFile(parsing: Data(text.utf8), origin: path), path: path, efiFirmwareInstalled: efi)
    }

    @Test func readsKeysInAnyCaseWithEscapesAndComments() throws {
        var file = try VMXFile(
            parsing: Data(
                """
                # a comment
                .encoding = "UTF-8"
                DisplayName = "web |22prod|22 |7C 1"
                memSize = "2048"
                bare = TRUE # trailing comment
                memsize = "4096"

                """.utf8), origin: "x.vmx")
        #expect(file["displayname"] == "web \"prod\" | 1")
        #expect(file["MEMSIZE"] == "4096", "the last value of a key written twice wins")
        #expect(file.bool("bare") == true)
        #expect(file.unusedKeys.isEmpty)
    }

    @Test func decodesTheEncodingItNames() throws {
        // "Café" in windows-1252: é is 0xE9, not valid UTF-8 on its own.
        var bytes = Data(".encoding = \"windows-1252\"\ndisplayName = \"Caf".utf8)
        bytes.append(0xE9)
        bytes.append(contentsOf: Array("\"\n".utf8))
        var file = try VMXFile(parsing: bytes, origin: "x.vmx")
        #expect(file["displayName"] == "Café")
        #expect(throws: VMDriverError.self) { try VMXFile(parsing: Data(".encoding = \"klingon\"\n".utf8), origin: "x.vmx") }
    }

    @Test func refusesMalformedLinesNamingTheLine() {
        for text in ["displayName \"web\"\n", "displayName = \"web\n", "a = \"|zz\"\n", "bad key = \"1\"\n"] {
            #expect {
                try VMXFile(parsing: Data(text.utf8), origin: "x.vmx")
            } throws: { error in
                (error as? VMDriverError)?.code == .invalidParameter
                    && (error as? VMDriverError)?.message.contains("line 1") == true
            }
        }
    }

    @Test func mapsTheMachine() throws {
        let machine = try parse(
            """
            displayName = "web"
            uuid.bios = "56 4d 2a 0e 3b 5c 1b 79-bb 27 85 a4 52 0b 6f 72"
            memsize = "1024"
            numvcpus = "4"
            cpuid.coresPerSocket = "2"
            scsi0.present = "TRUE"
            scsi0.virtualDev = "pvscsi"
            scsi0:0.present = "TRUE"
            scsi0:0.fileName = "web.vmdk"
            ide1:0.present = "TRUE"
            ide1:0.deviceType = "cdrom-image"
            ide1:0.fileName = "/isos/install.iso"
            sata0:1.present = "FALSE"
            sata0:1.fileName = "old.vmdk"
            ethernet0.present = "TRUE"
            ethernet0.virtualDev = "vmxnet3"
            ethernet0.addressType = "static"
            ethernet0.address = "00:50:56:AA:BB:CC"
            serial0.present = "TRUE"
            serial0.fileType = "file"
            serial0.fileName = "serial.txt"
            guestOS = "ubuntu-64"
            """)
        #expect(machine.name == "web")
        #expect(machine.uuid == UUID(uuidString: "564d2a0e-3b5c-1b79-bb27-85a4520b6f72"))
        #expect(machine.memoryMiB == 1024 && machine.vcpus == 4 && machine.coresPerSocket == 2)
        #expect(machine.scsiControllers == [0: "vmpvscsi"])
        #expect(
            machine.disks == [
                .init(bus: .scsi, controller: 0, unit: 0, path: "/vms/web/web.vmdk", cdrom: false, format: "vmdk"),
                .init(bus: .ide, controller: 1, unit: 0, path: "/isos/install.iso", cdrom: true, format: "raw"),
            ])
        #expect(machine.nics == [.init(index: 0, model: "vmxnet3", mac: "00:50:56:aa:bb:cc")])
        #expect(machine.serialFiles == ["/vms/web/serial.txt"])
        #expect(machine.unmappedKeys == ["guestOS"], "a device that is not present is not 'unmapped'")
        let xml = machine.domainXML(domainType: "qemu", network: "isolated", vmxPath: "/vms/web/web.vmx")
        let root = try XMLTree.parse(xml)
        #expect(root.child("uuid")?.text == "564d2a0e-3b5c-1b79-bb27-85a4520b6f72")
        #expect(root.child("cpu")?.child("topology")?.attributes["cores"] == "2")
        let disks = root.child("devices")?.children("disk") ?? []
        #expect(disks.map { $0.child("target")?.attributes["dev"] } == ["sda", "hdc"])
        #expect(disks.last?.child("address")?.attributes["bus"] == "1", "ide1 is the second IDE bus")
        #expect(root.child("devices")?.child("interface")?.child("source")?.attributes["network"] == "isolated")
        #expect(VMXRecord.path(inElement: "<vmdriver:vmx xmlns:vmdriver='\(VMXRecord.namespace)' path='/a.vmx'/>") == "/a.vmx")
    }

    @Test func refusesWhatKVMHereCannotGive() {
        let cases: [(String, ReturnCode)] = [
            ("firmware = \"efi\"\n", .notSupported),
            ("scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"buslogic\"\n", .notSupported),
            ("nvme0.present = \"TRUE\"\nnvme0:0.present = \"TRUE\"\nnvme0:0.fileName = \"a.vmdk\"\n", .notSupported),
            ("ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"vlance\"\n", .notSupported),
            ("memsize = \"lots\"\n", .invalidParameter),
            ("numvcpus = \"3\"\ncpuid.coresPerSocket = \"2\"\n", .invalidParameter),
            ("uuid.bios = \"56 4d\"\n", .invalidParameter),
            ("scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a.vmdk\"\n", .invalidParameter),
        ]
        for (text, code) in cases {
            #expect(throws: VMDriverError.self) { try parse(text) }
            do {
                _ = try parse(text)
            } catch {
                #expect(error.code == code, "\(text): \(error)")
            }
        }
        #expect((try? parse("firmware = \"efi\"\n", efi: true))?.efi == true)
    }

    /// Mutated files (bytes dropped, flipped, duplicated; seeded, so a failure repeats) either
    /// map or fail with code 4 or 1 and a message: never a crash, never another code.
    @Test func survivesMutatedFiles() {
        let seed = Array(
            """
            .encoding = "UTF-8"
            displayName = "web |22x|22"
            memsize = "64"
            numvcpus = "2"
            uuid.bios = "56 4d 2a 0e 3b 5c 1b 79-bb 27 85 a4 52 0b 6f 72"
            scsi0.present = "TRUE"
            scsi0:0.present = "TRUE"
            scsi0:0.fileName = "d.vmdk"
            ethernet0.present = "TRUE"
            ethernet0.generatedAddress = "00:0c:29:0b:6f:72"

            """.utf8)
        var generator = SystemRandomNumberGenerator.Seeded(seed: 0x564D_5831)
        for _ in 0..<3000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes.remove(at: index)
                case 1: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                default: bytes.insert(bytes[index], at: index)
                }
                if bytes.isEmpty { bytes = seed }
            }
            do {
                _ = try VMXMachine(
                    VMXFile(parsing: Data(bytes), origin: "f.vmx"), path: "/vms/f.vmx", efiFirmwareInstalled: false)
            } catch {
                #expect(error.code == .invalidParameter || error.code == .notSupported, "\(error)")
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test func writesUUIDsAsVMwareDoes() {
        let uuid = UUID()
        #expect(VMXMachine.uuid(vmware: VMXMachine.vmwareUUID(uuid)) == uuid)
        #expect(VMXMachine.letters(0) == "a" && VMXMachine.letters(25) == "z" && VMXMachine.letters(26) == "aa")
    }

    /// On the test driver: opening a .vmx registers it once; opening again finds the same VM,
    /// by its recorded path, with the unmapped keys reported both times.
    @Test func opensAndFindsAgainOnTheTestDriver() async throws {
        let host = try await Host.connect("test:///default")
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vmx-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data().write(to: folder.appendingPathComponent("d.vmdk"))
        let vmx = folder.appendingPathComponent("m.vmx").path
        try
            "displayName = \"vmx-m\"\nmemsize = \"64\"\nide0:0.present = \"TRUE\"\nide0:0.fileName = \"d.vmdk\"\nfoo.bar = \"1\"\n"
            .write(toFile: vmx, atomically: true, encoding: .utf8)
        let first = try await host.open(vmx)
        #expect(first.origin == .defined)
        #expect(first.unmappedKeys == ["foo.bar"])
        let again = try await host.open(vmx)
        #expect(again.origin == .registered && again.uuid == first.uuid)
        #expect(try await again.vmxPath() == vmx)
        // A .vmx naming a disk that is not there registers nothing.
        try "displayName = \"vmx-n\"\nide0:0.present = \"TRUE\"\nide0:0.fileName = \"none.vmdk\"\n"
            .write(toFile: folder.appendingPathComponent("n.vmx").path, atomically: true, encoding: .utf8)
        await #expect(throws: VMDriverError.self) { try await host.open(folder.appendingPathComponent("n.vmx").path) }
        #expect(try await host.list(all: true).contains { $0.name == "vmx-n" } == false)
        try first.domain.undefine([])
        try await host.close()
    }
}

/// CIM's embedded instances and what they ask of a migration.
@Suite("CIM setting data")
struct CIMSettingDataTests {
    @Test func readsCIMXMLAndMOFAlike() throws {
        let xml = try CIMInstance(
            parsing: """
                <INSTANCE CLASSNAME="CIM_VirtualSystemMigrationSettingData">
                  <PROPERTY NAME="MigrationType" TYPE="uint16"><VALUE>2</VALUE></PROPERTY>
                  <PROPERTY NAME="Caption" TYPE="string"></PROPERTY>
                  <PROPERTY.ARRAY NAME="List" TYPE="uint16"><VALUE.ARRAY><VALUE>1</VALUE><VALUE>2</VALUE></VALUE.ARRAY></PROPERTY.ARRAY>
                </INSTANCE>
                """, what: "x")
        let mof = try CIMInstance(
            parsing: "instance of CIM_VirtualSystemMigrationSettingData { MigrationType = 2; Caption = NULL; List = {1, 2}; };",
            what: "x")
        #expect(xml == mof)
        #expect(xml["migrationtype"] == .scalar("2"))
        for bad in ["<INSTANCE>", "<nope/>", "instance of X { A = ; };", "instance X {};", "instance of X { A = \"open };"] {
            #expect(throws: VMDriverError.self) { try CIMInstance(parsing: bad, what: "x") }
        }
    }

    @Test func mapsMigrationSystemAndResourceSettings() throws {
        let request = try CIMMigrationRequest(
            migrationSettingData:
                "instance of KVM_VirtualSystemMigrationSettingData { MigrationType = 3; TransportType = 4; Bandwidth = 50; };",
            newSystemSettingData: "instance of CIM_VirtualSystemSettingData { ElementName = \"web-moved\"; };",
            newResourceSettingData: [
                "instance of CIM_ResourceAllocationSettingData { ResourceType = 3; VirtualQuantity = 2; };",
                "instance of CIM_ResourceAllocationSettingData { ResourceType = 4; VirtualQuantity = 1; AllocationUnits = \"byte*2^30\"; };",
                "instance of CIM_ResourceAllocationSettingData { ResourceType = 31; HostResource = {\"/srv/vms/web.qcow2\"}; };",
            ])
        let options = request.options
        #expect(options.type == .warm && options.security == .high && options.bandwidthMiBps == 50)
        #expect(options.newName == "web-moved" && options.vcpus == 2 && options.memoryMiB == 1024 && options.home == "/srv/vms")
        let hyperV = try CIMMigrationRequest(
            migrationSettingData:
                "instance of Msvm_VirtualSystemMigrationSettingData { MigrationType = 32771; TransportType = 5; };",
            newSystemSettingData: nil, newResourceSettingData: [])
        #expect(hyperV.options.type == .hot && hyperV.options.storage == .copy && hyperV.options.security == .low)
    }

    @Test func refusesUnknownPropertiesAndValuesWithTheirCodes() {
        let cases: [(String, ReturnCode)] = [
            ("instance of CIM_VirtualSystemMigrationSettingData { Colour = 2; };", .incompatibleParameters),
            ("instance of CIM_VirtualSystemMigrationSettingData { MigrationType = 9; };", .invalidParameter),
            ("instance of CIM_VirtualSystemMigrationSettingData { MigrationType = 32769; };", .notSupported),
            ("instance of CIM_VirtualSystemMigrationSettingData { TransportType = 2; };", .notSupported),
            ("instance of CIM_VirtualSystemMigrationSettingData { MigrationType = \"two\"; };", .invalidParameter),
            ("instance of CIM_ComputerSystem { Name = \"x\"; };", .invalidParameter),
            ("<INSTANCE CLASSNAME='CIM_VirtualSystemMigrationSettingData'><PROPERTY NAME='MigrationType'>", .invalidParameter),
        ]
        for (text, code) in cases {
            do {
                _ = try CIMMigrationRequest(migrationSettingData: text, newSystemSettingData: nil, newResourceSettingData: [])
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.code == code, "\(text): \(error)")
            }
        }
    }
}

extension SystemRandomNumberGenerator {
    /// A small seeded generator (SplitMix64), so a mutation that fails repeats.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
