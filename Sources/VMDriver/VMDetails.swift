import Foundation

/// What `open` reports about a VM: a snapshot taken when it was asked for.
public struct VMDetails: Sendable, Codable, Equatable {
    public var name: String
    /// Written in JSON as libvirt writes it: lowercase.
    @LowercaseUUID public var uuid: UUID
    public var state: VMState
    /// libvirt's domain type: `kvm` or `qemu` (TCG) …
    public var domainType: String
    public var vcpus: UInt32
    public var memoryMiB: UInt64
    public var maxMemoryMiB: UInt64
    public var persistent: Bool
    /// The host the VM is on: its name and URI.
    public var host: HostReference
    public var disks: [Disk]
    public var nics: [NIC]

    public struct HostReference: Sendable, Codable, Equatable {
        public var name: String
        public var uri: String
    }

    public struct Disk: Sendable, Codable, Equatable {
        /// The guest device: vda, sda, hdc …
        public var target: String
        /// disk, cdrom, floppy, lun.
        public var device: String
        /// The image path on the host (for network or pool disks, what libvirt names it by).
        public var path: String?
        /// The image format as read from the image itself (qcow2, raw …); the declared driver
        /// format when the image cannot be read from here.
        public var format: String?
        /// The backing images below this one, nearest first, as read from the image headers.
        /// Empty for a standalone image; nil when the image could not be read (`chainNote` says why).
        public var backingChain: [BackingImage]?
        public var chainNote: String?
        public var readOnly: Bool
    }

    public struct BackingImage: Sendable, Codable, Equatable {
        public var path: String
        public var format: String?
    }

    public struct NIC: Sendable, Codable, Equatable {
        public var mac: String?
        /// network, bridge, user, direct …
        public var type: String
        /// The network, bridge or device it attaches to.
        public var source: String?
        public var model: String?
    }
}

/// Encodes a UUID as libvirt spells it (lowercase); Foundation's default is uppercase.
@propertyWrapper
public struct LowercaseUUID: Sendable, Codable, Equatable {
    public var wrappedValue: UUID
    public init(wrappedValue: UUID) { self.wrappedValue = wrappedValue }
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let uuid = UUID(uuidString: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a UUID: \(text)"))
        }
        wrappedValue = uuid
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue.uuidString.lowercased())
    }
}
