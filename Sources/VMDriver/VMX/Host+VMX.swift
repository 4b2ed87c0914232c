import Foundation
internal import Libvirt

extension Host {
    /// The OVMF builds libvirt finds for `<os firmware='efi'>` (Debian's ovmf package).
    static let ovmfCandidates = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"]

    /// Opens (and the first time, registers) the VM a VMware `.vmx` describes. See `open(_:)`.
    func open(vmx path: String, network: String?) async throws(VMDriverError) -> VirtualMachine {
        guard !isRemote else {
            throw VMDriverError(
                .notSupported,
                "\(path) would be read on this machine, and \(label) is another one: open the .vmx with vmctl on the host that holds it (or connect to it as qemu:///system there)"
            )
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        // A VIX clone's .vmx path is recorded, not written: it may have no file.
        var machine: VMXMachine?
        if FileManager.default.fileExists(atPath: absolute) {
            let file = try VMXFile(parsing: try Self.readVMX(absolute), origin: absolute)
            let efi = Self.ovmfCandidates.contains { FileManager.default.fileExists(atPath: $0) }
            machine = try VMXMachine(file, path: absolute, efiFirmwareInstalled: efi)
        }
        if let known = try await vmxRegistered(absolute) {
            return VirtualMachine(
                host: self, domain: known.domain, name: known.name, uuid: known.uuid, origin: .registered,
                unmappedKeys: machine?.unmappedKeys ?? [], notes: machine?.notes ?? [])
        }
        guard let machine else { throw VMDriverError(.invalidParameter, "cannot open \(absolute): no such file") }
        for disk in machine.disks where !FileManager.default.fileExists(atPath: disk.path) {
            throw VMDriverError(.invalidParameter, "\(absolute) names \(disk.path), which does not exist; nothing was registered")
        }
        // libvirt gives QEMU's user access to a disk's file and its backing chain, and a split
        // vmdk's extents are neither: QEMU then fails with "Permission denied" on the first
        // extent (PLATFORM.md). Only extents everyone may read and write open for sure.
        for disk in machine.disks {
            for extent in disk.extents {
                var info = stat()
                guard stat(extent, &info) == 0 else {
                    throw VMDriverError(
                        .invalidParameter, "\(disk.path) names the extent \(extent), which does not exist; nothing was registered"
                    )
                }
                if info.st_mode & 0o006 != 0o006 {
                    throw VMDriverError(
                        .notSupported,
                        "\(disk.path) is a split vmdk, and libvirt gives QEMU access to its descriptor only, not to the extent \(extent) (mode \(String(info.st_mode & 0o777, radix: 8))): make it a monolithic vmdk (qemu-img convert -O vmdk -o subformat=monolithicSparse) or let QEMU's user read and write every extent; nothing was registered"
                    )
                }
            }
        }
        let domainType = try await capabilities().linuxDomainType ?? "qemu"
        let label = self.label
        return try await blocking("registering \(absolute) on \(label)") { [self] connection in
            var notes = machine.notes
            let chosen: String?
            if machine.nics.isEmpty {
                chosen = nil
            } else if let network {
                do {
                    _ = try connection.lookupNetwork(name: network)
                } catch let error as LibvirtError where error.code == .noNetwork {
                    throw VMDriverError(.invalidParameter, "no network named '\(network)' on \(label)", cause: error)
                }
                chosen = network
            } else if (try? connection.lookupNetwork(name: "default").isActive()) == true {
                chosen = "default"
                notes.append("NICs joined the network 'default' (active); --network chooses another")
            } else {
                chosen = nil
                notes.append(
                    "\(machine.nics.count) NIC(s) left out: no --network given and the network 'default' is not active (VMDriver never starts a network)"
                )
            }
            if let uuid = machine.uuid, let existing = try? connection.lookupDomain(uuid: uuid) {
                return try VirtualMachine(
                    host: self, domain: existing, name: existing.name(), uuid: uuid, origin: .registered,
                    unmappedKeys: machine.unmappedKeys, notes: notes)
            }
            let xml = machine.domainXML(domainType: domainType, network: chosen, vmxPath: absolute)
            do {
                let domain = try connection.defineDomain(xml: xml, flags: [.validate])
                return try VirtualMachine(
                    host: self, domain: domain, name: domain.name(), uuid: domain.uuid(), origin: .defined,
                    unmappedKeys: machine.unmappedKeys, notes: notes)
            } catch let error as LibvirtError {
                let code = ReturnCode(error.code)
                throw VMDriverError(
                    code == .failed ? .invalidParameter : code,
                    "libvirt rejected the machine \(absolute) maps to on \(label): \(error.message); nothing was registered",
                    cause: error)
            }
        }
    }

    /// The VM registered for this .vmx path: by the path VMDriver recorded (a VM opened from it
    /// before, or a VIX clone given that path), or by the file's uuid.bios.
    private func vmxRegistered(_ path: String) async throws(VMDriverError) -> VirtualMachine? {
        try await blocking("looking for the VM of \(path) on \(label)") { [self] connection in
            for domain in try connection.listAllDomains() {
                guard let xml = try? domain.metadata(.element, uri: VMXRecord.namespace, Self.definitionImpact(of: domain)),
                    VMXRecord.path(inElement: xml) == path
                else { continue }
                return try wrap(domain, origin: .registered)
            }
            return nil
        }
    }

    /// The side to read metadata from: libvirt reads one side at a time.
    static func definitionImpact(of domain: Domain) -> Domain.ModificationImpact {
        (try? domain.isActive()) == true ? .live : .config
    }

    private static func readVMX(_ path: String) throws(VMDriverError) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw VMDriverError(.invalidParameter, "cannot open \(path): no such file")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw VMDriverError(.invalidParameter, "cannot open \(path): it is not a regular file")
        }
        guard info.st_size <= VMXFile.maximumSize else {
            throw VMDriverError(
                .invalidParameter, "cannot open \(path): it is \(info.st_size) bytes, more than a .vmx's \(VMXFile.maximumSize)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VMDriverError(.invalidParameter, "cannot open \(path): it cannot be read")
        }
        return data
    }
}
