import Foundation
internal import Libvirt

extension Host {
    /// Opens a VM by name, by UUID, from the path of a libvirt domain XML file, or from a VMware
    /// `.vmx` file (VixVM_Open).
    ///
    /// For a file: if a VM with the file's UUID (or, when it has none, its name) is registered,
    /// that VM is returned; otherwise the file is registered (defined) — or, with `transient`,
    /// started without registering — and `origin` says so.
    ///
    /// A `.vmx` is mapped to the machine KVM runs (`VMXMachine`): its disks are used in place,
    /// `uuid.bios` becomes the VM's UUID, and the keys not mapped are in the VM's
    /// `unmappedKeys`. Its NICs join `network`; without one, the host's `default` network if it
    /// is already active, else they are left out (VMDriver never starts a network). Opening the
    /// same path again finds the same VM, and so does the path a VIX clone was given.
    /// - Throws: code 4 for a VM that does not exist, a missing file or XML libvirt rejects, with
    ///   nothing defined; code 1 for a .vmx whose devices KVM here cannot give, or a .vmx on a
    ///   remote host (its files are that host's, and VMDriver reads none of them from here).
    public func open(
        _ reference: String, transient: Bool = false, network: String? = nil
    ) async throws(VMDriverError) -> VirtualMachine {
        let reference = reference.trimmingCharacters(in: .whitespaces)
        guard !reference.isEmpty else {
            throw VMDriverError(.invalidParameter, "no VM given: name a VM, a UUID or a domain XML file")
        }
        // libvirt gets C strings: "web\0x" would find "web". No name, UUID or path holds a NUL.
        guard !reference.unicodeScalars.contains("\0") else {
            throw VMDriverError(
                .invalidParameter,
                "'\(reference.debugDescription.dropFirst().dropLast())' names no VM: it contains a NUL character")
        }
        if reference.lowercased().hasSuffix(".vmx") {
            if transient {
                throw VMDriverError(
                    .incompatibleParameters, "--transient applies to a domain XML file, not to the .vmx \(reference)")
            }
            return try await open(vmx: reference, network: network)
        }
        if network != nil {
            throw VMDriverError(.incompatibleParameters, "--network applies to a .vmx file, and '\(reference)' is not one")
        }
        if Self.looksLikePath(reference) {
            return try await open(file: reference, transient: transient)
        }
        if transient {
            throw VMDriverError(
                .incompatibleParameters,
                "--transient applies to a domain XML file, and '\(reference)' is a VM name or UUID")
        }
        let label = self.label
        return try await blocking("opening '\(reference)' on \(label)") { [self] connection in
            do {
                let domain =
                    if let uuid = UUID(uuidString: reference) {
                        try connection.lookupDomain(uuid: uuid)
                    } else {
                        try connection.lookupDomain(name: reference)
                    }
                return try wrap(domain, origin: .registered)
            } catch let error as LibvirtError where error.code == .noDomain {
                throw VMDriverError(
                    .invalidParameter,
                    UUID(uuidString: reference) != nil
                        ? "no VM with UUID \(reference) on \(label)" : "no VM named '\(reference)' on \(label)",
                    cause: error)
            }
        }
    }

    /// The host's VMs, running ones only unless `all`.
    public func list(all: Bool = false) async throws(VMDriverError) -> [VirtualMachine] {
        try await blocking("listing the VMs on \(label)") { [self] connection in
            try connection.listAllDomains(all ? [] : [.active]).map { try wrap($0, origin: .registered) }
                .sorted { $0.name < $1.name }
        }
    }

    /// The largest domain XML file `open` reads.
    static let maximumXMLFileSize = 10 << 20

    private static func looksLikePath(_ reference: String) -> Bool {
        reference.unicodeScalars.contains("/") || reference.hasSuffix(".xml")
    }

    func wrap(_ domain: Domain, origin: VirtualMachine.Origin) throws -> VirtualMachine {
        VirtualMachine(host: self, domain: domain, name: try domain.name(), uuid: try domain.uuid(), origin: origin)
    }

    private func open(file path: String, transient: Bool) async throws(VMDriverError) -> VirtualMachine {
        let url = URL(fileURLWithPath: path)
        // Only a regular file of a sensible size: a FIFO or a device would block or never end,
        // and a domain definition is kilobytes (libvirt itself reads at most 10 MiB of XML).
        var info = stat()
        if stat(path, &info) == 0 {
            if info.st_mode & S_IFMT != S_IFREG {
                throw VMDriverError(.invalidParameter, "cannot open domain XML file \(path): it is not a regular file")
            }
            if info.st_size > Self.maximumXMLFileSize {
                throw VMDriverError(
                    .invalidParameter,
                    "cannot open domain XML file \(path): it is \(info.st_size) bytes, more than a domain definition's \(Self.maximumXMLFileSize)"
                )
            }
        }
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "it cannot be read as UTF-8 text" : "no such file"
            throw VMDriverError(.invalidParameter, "cannot open domain XML file \(path): \(reason)")
        }
        let xml = try DomainXML(parsing: text, origin: "domain XML file \(path)")
        guard xml.name?.isEmpty == false else {
            throw VMDriverError(.invalidParameter, "domain XML file \(path) has no <name>: libvirt needs one")
        }
        let label = self.label
        return try await blocking("registering \(path) on \(label)") { [self] connection in
            if let existing = try Self.registered(xml, connection: connection) {
                return try wrap(existing, origin: .registered)
            }
            do {
                let domain =
                    transient
                    ? try connection.createDomain(xml: text)
                    : try connection.defineDomain(xml: text, flags: [.validate])
                return try wrap(domain, origin: transient ? .startedTransient : .defined)
            } catch let error as LibvirtError {
                let code = ReturnCode(error.code)
                // A define that fails is the file's fault; a transient start may also fail in QEMU.
                throw VMDriverError(
                    code == .failed && !transient ? .invalidParameter : code,
                    (transient ? "cannot start" : "libvirt rejected")
                        + " domain XML file \(path) on \(label): \(error.message); nothing was registered",
                    cause: error)
            }
        }
    }

    /// The VM a file describes, if it is registered: by UUID when the file has one, else by name.
    private static func registered(_ xml: DomainXML, connection: Connection) throws -> Domain? {
        do {
            if let uuid = xml.uuid { return try connection.lookupDomain(uuid: uuid) }
            if let name = xml.name { return try connection.lookupDomain(name: name) }
            return nil
        } catch  where error.code == .noDomain {
            return nil
        }
    }
}
