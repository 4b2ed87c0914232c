import Foundation
internal import Libvirt

/// A VM on a host, as `Host.open` returns it.
public final class VirtualMachine: Sendable {
    /// How `open` came to return this VM.
    public enum Origin: String, Sendable, Codable {
        /// It was already registered on the host.
        case registered
        /// `open` registered (defined) it from an XML file.
        case defined
        /// `open` started it from an XML file without registering it.
        case startedTransient = "started transient"
    }

    public let host: Host
    public let name: String
    public let uuid: UUID
    public let origin: Origin
    /// For a VM opened from a `.vmx`: the file's keys VMDriver did not map, as written.
    public let unmappedKeys: [String]
    /// For a VM opened from a `.vmx`: what the mapping decided (a default taken, a device left out).
    public let notes: [String]
    let domain: Domain

    init(
        host: Host, domain: Domain, name: String, uuid: UUID, origin: Origin, unmappedKeys: [String] = [],
        notes: [String] = []
    ) {
        self.host = host
        self.domain = domain
        self.name = name
        self.uuid = uuid
        self.origin = origin
        self.unmappedKeys = unmappedKeys
        self.notes = notes
    }

    /// "VM 'NAME' on host 'HOST'", for messages.
    var label: String { "VM '\(name)' on \(host.label)" }

    /// The VM's state now.
    public func state() async throws(VMDriverError) -> VMState {
        try await host.blocking("reading the state of \(label)") { [domain] _ in try Self.state(of: domain) }
    }

    static func state(of domain: Domain) throws -> VMState {
        let (state, _) = try domain.state()
        let managedSave = state == .shutoff ? ((try? domain.hasManagedSaveImage()) ?? false) : false
        return VMState(state, managedSave: managedSave)
    }

    /// Everything `open` reports: state, vCPUs, memory, disks with their backing chains read from
    /// the images, NICs, persistence, host.
    public func details() async throws(VMDriverError) -> VMDetails {
        let host = self.host
        return try await host.blocking("reading \(label)") { [domain, name, uuid] _ in
            let info = try domain.info()
            let state = try Self.state(of: domain)
            let xml = try DomainXML(parsing: try domain.xmlDescription(), origin: "the definition of VM '\(name)'")
            let disks = xml.disks.map { disk -> VMDetails.Disk in
                var result = VMDetails.Disk(
                    target: disk.target, device: disk.device, path: disk.path, format: disk.format,
                    backingChain: nil, chainNote: nil, readOnly: disk.readOnly)
                if let path = disk.path, disk.sourceType == "file" || disk.sourceType == "block" {
                    let image = host.storage.inspect(path)
                    result.format = image.format ?? disk.format
                    result.backingChain = image.chain
                    result.chainNote = image.note
                } else {
                    result.chainNote =
                        disk.path == nil ? "the disk has no source" : "a \(disk.sourceType) disk is not read from here"
                }
                return result
            }
            return VMDetails(
                name: name, uuid: uuid, state: state, domainType: xml.type, vcpus: info.vcpus,
                memoryMiB: info.memoryKiB / 1024, maxMemoryMiB: info.maxMemoryKiB / 1024,
                persistent: try domain.isPersistent(),
                host: .init(name: host.name, uri: host.uri),
                disks: disks,
                nics: xml.interfaces.map { .init(mac: $0.mac, type: $0.type, source: $0.source, model: $0.model) })
        }
    }
}
