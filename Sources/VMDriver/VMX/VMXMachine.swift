import Foundation

/// What a VMware `.vmx` describes, in the terms KVM runs: the machine `Host.open` defines for it.
///
/// Mapped: displayName, uuid.bios, memsize, numvcpus and cpuid.coresPerSocket, firmware,
/// IDE/SATA/SCSI disks and CD-ROM images (`.vmdk` used in place through QEMU's vmdk driver),
/// scsiN.virtualDev, ethernetN (model and MAC), serial ports to files. Every other key is
/// listed in `unmappedKeys`.
struct VMXMachine: Equatable {
    enum Bus: String { case ide, sata, scsi, nvme }

    struct Disk: Equatable {
        var bus: Bus
        var controller: Int
        var unit: Int
        /// Absolute path (relative `fileName`s are taken from the .vmx's folder).
        var path: String
        var cdrom: Bool
        /// The QEMU format: vmdk, qcow2 or raw.
        var format: String
        /// For a split vmdk (a descriptor naming extent files): the extents' absolute paths.
        var extents: [String] = []
    }

    struct NIC: Equatable {
        var index: Int
        /// QEMU's model: e1000, e1000e, vmxnet3.
        var model: String
        var mac: String?
    }

    var name: String
    var uuid: UUID?
    var memoryMiB: Int
    var vcpus: Int
    var coresPerSocket: Int
    var efi: Bool
    var disks: [Disk] = []
    /// SCSI controller index → QEMU model.
    var scsiControllers: [Int: String] = [:]
    var nics: [NIC] = []
    var serialFiles: [String] = []
    /// Keys the file has that VMDriver does not map, as written.
    var unmappedKeys: [String] = []
    /// What the mapping decided that a user should hear (a default taken, a device left out).
    var notes: [String] = []

    /// The QEMU models VMware's SCSI controllers have.
    static let scsiModels = ["lsilogic": "lsilogic", "lsisas1068": "lsisas1068", "pvscsi": "vmpvscsi"]
    /// The QEMU models VMware's NICs have (VMware's default, no virtualDev, is e1000 here).
    static let nicModels = ["e1000": "e1000", "e1000e": "e1000e", "vmxnet3": "vmxnet3"]

    /// Maps a parsed file. `path` is the .vmx's absolute path, for relative file names.
    /// - Throws: code 4 for values that do not parse (memsize "lots"), code 1 for devices KVM
    ///   here cannot give (EFI without OVMF, an NVMe disk, a BusLogic controller …).
    init(_ file: VMXFile, path: String, efiFirmwareInstalled: Bool) throws(VMDriverError) {
        var file = file
        let origin = path
        let folder = (path as NSString).deletingLastPathComponent
        func absolute(_ name: String) -> String {
            name.hasPrefix("/") ? name : (folder as NSString).appendingPathComponent(name)
        }
        func integer(_ key: String, default value: Int, range: ClosedRange<Int>) throws(VMDriverError) -> Int {
            guard let text = file[key] else { return value }
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
                throw VMDriverError(
                    .invalidParameter,
                    "\(origin): \(key) = \"\(text)\" is not a number in \(range.lowerBound)…\(range.upperBound)")
            }
            return number
        }

        let display = file["displayName"]?.trimmingCharacters(in: .whitespaces) ?? ""
        let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        // libvirt names cannot hold '/'.
        name = (display.isEmpty ? base : display).replacingOccurrences(of: "/", with: "-")
        if let text = file["uuid.bios"] {
            guard let uuid = Self.uuid(vmware: text) else {
                throw VMDriverError(.invalidParameter, "\(origin): uuid.bios = \"\(text)\" is not 16 hex bytes")
            }
            self.uuid = uuid
        } else {
            uuid = nil
        }
        if file["memsize"] == nil { notes.append("no memsize: 256 MiB, VMware's usual minimum for a guest") }
        memoryMiB = try integer("memsize", default: 256, range: 4...(4 << 20))
        vcpus = try integer("numvcpus", default: 1, range: 1...4096)
        coresPerSocket = try integer("cpuid.coresPerSocket", default: 1, range: 1...4096)
        if vcpus % coresPerSocket != 0 {
            throw VMDriverError(
                .invalidParameter, "\(origin): numvcpus \(vcpus) is not a multiple of cpuid.coresPerSocket \(coresPerSocket)")
        }
        switch file["firmware"]?.lowercased() {
        case nil, "bios": efi = false
        case "efi":
            guard efiFirmwareInstalled else {
                throw VMDriverError(
                    .notSupported, "\(origin): firmware = \"efi\" needs OVMF, which this host lacks (apt-get install ovmf)")
            }
            efi = true
        case let other?:
            throw VMDriverError(.invalidParameter, "\(origin): firmware = \"\(other)\" is neither bios nor efi")
        }

        // Controllers: scsiN.virtualDev names the model.
        for key in file.keys(withPrefix: "scsi") {
            guard let match = key.wholeMatch(of: /scsi(\d+)\.present/), let index = Int(match.1) else { continue }
            guard file.bool(key) == true else { file.ignore(prefix: "scsi\(index)."); continue }
            let device = file["scsi\(index).virtualDev"]?.lowercased() ?? "lsilogic"
            guard let model = Self.scsiModels[device] else {
                throw VMDriverError(
                    .notSupported,
                    "\(origin): scsi\(index).virtualDev = \"\(device)\" has no QEMU model here (lsilogic, lsisas1068 and pvscsi do)"
                )
            }
            scsiControllers[index] = model
        }
        for bus in ["sata", "nvme", "ide"] {
            for key in file.keys(withPrefix: bus) where key.wholeMatch(of: /[a-z]+\d+\.present/) != nil {
                _ = file.bool(key)
            }
        }

        // Disks and CD-ROMs: BUS<c>:<u>.present = TRUE with a fileName.
        var devices: [(Bus, Int, Int)] = []
        for entry in file.entries {
            let key = entry.key.lowercased()
            guard let match = key.wholeMatch(of: /(ide|sata|scsi|nvme)(\d+):(\d+)\.present/),
                let bus = Bus(rawValue: String(match.1)), let controller = Int(match.2), let unit = Int(match.3)
            else { continue }
            devices.append((bus, controller, unit))
        }
        for (bus, controller, unit) in devices {
            let prefix = "\(bus.rawValue)\(controller):\(unit)."
            guard file.bool(prefix + "present") == true else { file.ignore(prefix: prefix); continue }
            let deviceType = file[prefix + "deviceType"]?.lowercased() ?? "disk"
            guard let fileName = file[prefix + "fileName"], !fileName.isEmpty else {
                notes.append("\(prefix)present without a fileName: left out")
                continue
            }
            let cdrom: Bool
            switch deviceType {
            case "disk", "scsi-hardDisk", "ata-hardDisk": cdrom = false
            case "cdrom-image": cdrom = true
            case "atapi-cdrom", "cdrom-raw":
                notes.append("\(prefix)deviceType \(deviceType) (the host's drive \(fileName)): left out")
                continue
            default:
                throw VMDriverError(
                    .notSupported, "\(origin): \(prefix)deviceType = \"\(deviceType)\" is not a disk or CD-ROM image")
            }
            if bus == .nvme {
                throw VMDriverError(
                    .notSupported,
                    "\(origin): \(prefix)fileName is an NVMe disk, and libvirt 9.0 has no NVMe disk bus; move it to sata or scsi in the .vmx"
                )
            }
            if bus == .scsi && scsiControllers[controller] == nil {
                throw VMDriverError(
                    .invalidParameter, "\(origin): \(prefix)fileName is on scsi\(controller), which is not present")
            }
            if bus == .ide && (controller > 1 || unit > 1) {
                throw VMDriverError(.invalidParameter, "\(origin): \(prefix): IDE has controllers 0-1 with units 0-1")
            }
            let file = absolute(fileName)
            let format =
                cdrom ? "raw" : file.lowercased().hasSuffix(".vmdk") ? "vmdk" : Self.probeFormat(file)
            let extents = format == "vmdk" ? Self.extents(ofDescriptor: file) : []
            disks.append(
                Disk(bus: bus, controller: controller, unit: unit, path: file, cdrom: cdrom, format: format, extents: extents))
        }

        for key in file.keys(withPrefix: "ethernet") {
            guard let match = key.wholeMatch(of: /ethernet(\d+)\.present/), let index = Int(match.1) else { continue }
            guard file.bool(key) == true else { file.ignore(prefix: "ethernet\(index)."); continue }
            let device = file["ethernet\(index).virtualDev"]?.lowercased() ?? "e1000"
            guard let model = Self.nicModels[device] else {
                throw VMDriverError(
                    .notSupported,
                    "\(origin): ethernet\(index).virtualDev = \"\(device)\" has no QEMU model here (e1000, e1000e and vmxnet3 do)"
                )
            }
            let addressType = file["ethernet\(index).addressType"]?.lowercased()
            let address = addressType == "static" ? file["ethernet\(index).address"] : file["ethernet\(index).generatedAddress"]
            if addressType == "static" {
                _ = file["ethernet\(index).generatedAddress"]
            } else {
                _ = file["ethernet\(index).address"]
            }
            if let address, address.wholeMatch(of: /[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}/) == nil {
                throw VMDriverError(
                    .invalidParameter, "\(origin): ethernet\(index)'s address \"\(address)\" is not a MAC address")
            }
            nics.append(NIC(index: index, model: model, mac: address?.lowercased()))
        }
        nics.sort { $0.index < $1.index }

        for key in file.keys(withPrefix: "serial") {
            guard let match = key.wholeMatch(of: /serial(\d+)\.present/), let index = Int(match.1) else { continue }
            guard file.bool(key) == true else { file.ignore(prefix: "serial\(index)."); continue }
            let type = file["serial\(index).fileType"]?.lowercased() ?? "device"
            guard type == "file", let name = file["serial\(index).fileName"] else {
                notes.append("serial\(index) (\(type)): only serial ports to files are mapped; left out")
                continue
            }
            serialFiles.append(absolute(name))
        }
        unmappedKeys = file.unusedKeys
    }

    /// `56 4d 2a 0e 3b 5c 1b 79-bb 27 85 a4 52 0b 6f 72` → the UUID with those bytes.
    static func uuid(vmware text: String) -> UUID? {
        let hex = text.filter { !" -".contains($0) }
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        var formatted = hex.lowercased()
        for offset in [8, 13, 18, 23] {
            formatted.insert("-", at: formatted.index(formatted.startIndex, offsetBy: offset))
        }
        return UUID(uuidString: formatted)
    }

    /// VMware's way of writing a UUID in `uuid.bios`.
    static func vmwareUUID(_ uuid: UUID) -> String {
        let hex = uuid.uuidString.lowercased().filter { $0 != "-" }
        let bytes = stride(from: 0, to: 32, by: 2).map { offset -> String in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: 2)])
        }
        return bytes[0..<8].joined(separator: " ") + "-" + bytes[8..<16].joined(separator: " ")
    }

    /// The extent files a text vmdk descriptor names (`RW 4192256 SPARSE "disk-s001.vmdk"`),
    /// relative to its folder; none for a monolithic vmdk (binary, its descriptor inside).
    static func extents(ofDescriptor path: String) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 64 << 10), head.starts(with: Array("# Disk DescriptorFile".utf8)),
            let text = String(data: head, encoding: .utf8)
        else { return [] }
        let folder = (path as NSString).deletingLastPathComponent
        return text.split(separator: "\n").compactMap { line -> String? in
            guard let match = line.wholeMatch(of: /\s*(RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]+)".*/) else { return nil }
            let name = String(match.2)
            return name.hasPrefix("/") ? name : (folder as NSString).appendingPathComponent(name)
        }
    }

    /// qcow2 when the file starts with its magic, else raw (a disk VMDriver itself put in a .vmx).
    private static func probeFormat(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "raw" }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data([0x51, 0x46, 0x49, 0xFB]) ? "qcow2" : "raw"
    }

    /// The libvirt domain XML for this machine.
    /// - Parameters:
    ///   - domainType: `kvm` or `qemu`, as the host's capabilities decide.
    ///   - network: the libvirt network the NICs join; nil leaves the NICs out.
    ///   - vmxPath: recorded in the metadata, so the VM can be found by its file again.
    func domainXML(domainType: String, network: String?, vmxPath: String) -> String {
        let root = XMLTree(name: "domain", attributes: ["type": domainType])
        root.append("name", text: name)
        if let uuid { root.append("uuid", text: uuid.uuidString.lowercased()) }
        root.append("memory", attributes: [("unit", "MiB")], text: "\(memoryMiB)")
        root.append("vcpu", text: "\(vcpus)")
        let metadata = root.append("metadata")
        metadata.append("vmdriver:vmx", attributes: [("xmlns:vmdriver", VMXRecord.namespace), ("path", vmxPath)])
        let os = root.append("os", attributes: efi ? [("firmware", "efi")] : [])
        os.append("type", attributes: [("arch", "x86_64"), ("machine", "pc")], text: "hvm")
        if disks.contains(where: { !$0.cdrom }) { os.append("boot", attributes: [("dev", "hd")]) }
        if disks.contains(where: \.cdrom) { os.append("boot", attributes: [("dev", "cdrom")]) }
        root.append("features").append("acpi")
        if coresPerSocket > 1 {
            root.append("cpu").append(
                "topology",
                attributes: [("sockets", "\(vcpus / coresPerSocket)"), ("cores", "\(coresPerSocket)"), ("threads", "1")])
        }
        root.append("clock", attributes: [("offset", "utc")])
        let devices = root.append("devices")
        for (index, model) in scsiControllers.sorted(by: { $0.key < $1.key }) {
            devices.append("controller", attributes: [("type", "scsi"), ("index", "\(index)"), ("model", model)])
        }
        var sdLetter = 0
        for disk in disks {
            let element = devices.append("disk", attributes: [("type", "file"), ("device", disk.cdrom ? "cdrom" : "disk")])
            element.append("driver", attributes: [("name", "qemu"), ("type", disk.format)])
            element.append("source", attributes: [("file", disk.path)])
            let target: String
            switch disk.bus {
            case .ide: target = "hd" + Self.letters(disk.controller * 2 + disk.unit)
            case .sata, .scsi, .nvme:
                target = "sd" + Self.letters(sdLetter)
                sdLetter += 1
            }
            element.append("target", attributes: [("dev", target), ("bus", disk.bus.rawValue)])
            if disk.cdrom { element.append("readonly") }
            // IDE: one controller whose buses are ide0 and ide1; SATA and SCSI: a controller each.
            let (controller, bus) = disk.bus == .ide ? (0, disk.controller) : (disk.controller, 0)
            element.append(
                "address",
                attributes: [("type", "drive"), ("controller", "\(controller)"), ("bus", "\(bus)"), ("unit", "\(disk.unit)")])
        }
        if let network {
            for nic in nics {
                let element = devices.append("interface", attributes: [("type", "network")])
                if let mac = nic.mac { element.append("mac", attributes: [("address", mac)]) }
                element.append("source", attributes: [("network", network)])
                element.append("model", attributes: [("type", nic.model)])
            }
        }
        for (port, path) in serialFiles.enumerated() {
            let serial = devices.append("serial", attributes: [("type", "file")])
            serial.append("source", attributes: [("path", path), ("append", "on")])
            serial.append("target", attributes: [("port", "\(port)")])
        }
        if let first = serialFiles.first {
            let console = devices.append("console", attributes: [("type", "file")])
            console.append("source", attributes: [("path", first), ("append", "on")])
            console.append("target", attributes: [("type", "serial"), ("port", "0")])
        }
        devices.append("memballoon", attributes: [("model", "none")])
        return root.serialized()
    }

    /// a, b, … z, aa, ab … as libvirt names disks.
    static func letters(_ index: Int) -> String {
        var index = index
        var result = ""
        repeat {
            result = String(UnicodeScalar(UInt8(97 + index % 26))) + result
            index = index / 26 - 1
        } while index >= 0
        return result
    }
}

/// The `.vmx` a VM came from (or, for a VIX clone, was given), in the domain's `<metadata>`:
/// how opening the same path again finds the VM.
enum VMXRecord {
    static let namespace = "https://vmdriver.dev/xmlns/vmx/1.0"

    /// The path in the element `virDomainGetMetadata` returns for this namespace.
    static func path(inElement xml: String) -> String? {
        guard let root = try? XMLTree.parse(xml), root.name.hasSuffix("vmx") else { return nil }
        return root.attributes["path"]
    }

    /// The element to store with `virDomainSetMetadata` (key `vmdriver`).
    static func element(path: String) -> String {
        let element = XMLTree(name: "vmx", attributes: ["path": path])
        return element.serialized()
    }
}
