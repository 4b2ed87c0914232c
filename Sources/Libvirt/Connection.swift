internal import CLibvirt
import Foundation
import Synchronization

/// A connection to a libvirt driver (`qemu:///system`, `test:///default`, `qemu+tcp://host/system` …).
///
/// libvirt connections are thread-safe: libvirt serialises calls on a connection internally and
/// its objects are reference counted, so the handle may be shared across threads
/// (`@unchecked Sendable`). The pointer is freed in `deinit` if `close()` was not called.
public final class Connection: @unchecked Sendable {
    let pointer: virConnectPtr
    private let closed = Atomic(false)

    /// Opens a connection to `uri`.
    /// - Throws: `LibvirtError` (`.noConnect`, `.authFailed` …). Calls `virConnectOpenAuth`.
    /// - Parameter credentials: a user name and password answered to libvirt's authentication
    ///   requests (SASL, a qemu+ssh password); nil uses libvirt's default callbacks.
    public init(uri: String, readOnly: Bool = false, credentials: (username: String?, password: String?)? = nil)
        throws(LibvirtError)
    {
        let flags = readOnly ? UInt32(VIR_CONNECT_RO.rawValue) : 0
        if let credentials {
            pointer = try call("virConnectOpenAuth") {
                vmdriver_open_with_credentials(uri, credentials.username, credentials.password, flags)
            }
        } else {
            // libvirt's default auth callbacks (password prompts on a terminal, SSH agent …);
            pointer = try call("virConnectOpenAuth") { virConnectOpenAuth(uri, vmdriver_default_auth(), flags) }
        }
    }

    deinit {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { virConnectClose(pointer) }
    }

    /// Closes the connection. Further calls on objects from it fail.
    /// Calls `virConnectClose`.
    public func close() throws(LibvirtError) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try call("virConnectClose") { virConnectClose(pointer) }
    }

    /// The canonical URI of the connection. Calls `virConnectGetURI`.
    public func uri() throws(LibvirtError) -> String {
        takeString(try call("virConnectGetURI") { virConnectGetURI(pointer) })
    }

    /// The host name of the hypervisor's machine. Calls `virConnectGetHostname`.
    public func hostname() throws(LibvirtError) -> String {
        takeString(try call("virConnectGetHostname") { virConnectGetHostname(pointer) })
    }

    /// The driver's name: `QEMU`, `TEST` … Calls `virConnectGetType`.
    public func hypervisorType() throws(LibvirtError) -> String {
        // A static string owned by libvirt: not freed.
        String(cString: try call("virConnectGetType") { virConnectGetType(pointer) })
    }

    /// The hypervisor's version. Calls `virConnectGetVersion`.
    public func hypervisorVersion() throws(LibvirtError) -> Version {
        var version: UInt = 0
        try call("virConnectGetVersion") { virConnectGetVersion(pointer, &version) }
        return Version(encoded: version)
    }

    /// The version of libvirt the daemon behind this connection runs. Calls `virConnectGetLibVersion`.
    public func libraryVersion() throws(LibvirtError) -> Version {
        var version: UInt = 0
        try call("virConnectGetLibVersion") { virConnectGetLibVersion(pointer, &version) }
        return Version(encoded: version)
    }

    /// The host's capabilities XML. Calls `virConnectGetCapabilities`.
    public func capabilitiesXML() throws(LibvirtError) -> String {
        takeString(try call("virConnectGetCapabilities") { virConnectGetCapabilities(pointer) })
    }

    /// The domain capabilities XML for one emulator/arch/machine/virt type; nil picks the default.
    /// Calls `virConnectGetDomainCapabilities`.
    public func domainCapabilitiesXML(
        emulator: String? = nil, arch: String? = nil, machine: String? = nil, virtType: String? = nil
    ) throws(LibvirtError) -> String {
        takeString(
            try call("virConnectGetDomainCapabilities") {
                virConnectGetDomainCapabilities(pointer, emulator, arch, machine, virtType, 0)
            })
    }

    /// Whether the connection still answers. Calls `virConnectIsAlive`.
    public func isAlive() -> Bool { virConnectIsAlive(pointer) == 1 }

    /// Whether the transport is encrypted (TLS, SSH). Calls `virConnectIsEncrypted`.
    public func isEncrypted() throws(LibvirtError) -> Bool {
        try call("virConnectIsEncrypted") { virConnectIsEncrypted(pointer) } == 1
    }

    /// Whether the transport is secure against eavesdropping (encrypted, or a local socket).
    /// Calls `virConnectIsSecure`.
    public func isSecure() throws(LibvirtError) -> Bool {
        try call("virConnectIsSecure") { virConnectIsSecure(pointer) } == 1
    }

    /// Turns on keepalive: a dead peer is noticed after about `interval × (count + 1)` seconds.
    /// Returns false when the driver has no keepalive (local drivers). Calls `virConnectSetKeepAlive`.
    @discardableResult
    public func setKeepAlive(interval: Int32, count: UInt32) throws(LibvirtError) -> Bool {
        try call("virConnectSetKeepAlive") { virConnectSetKeepAlive(pointer, interval, count) } == 0
    }

    /// Facts about the host's hardware. Calls `virNodeGetInfo`.
    public func nodeInfo() throws(LibvirtError) -> NodeInfo {
        var info = virNodeInfo()
        try call("virNodeGetInfo") { virNodeGetInfo(pointer, &info) }
        let model = withUnsafeBytes(of: info.model) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return NodeInfo(
            model: model, memoryKiB: UInt64(info.memory), cpus: UInt32(info.cpus),
            mhz: UInt32(info.mhz), nodes: UInt32(info.nodes), sockets: UInt32(info.sockets),
            cores: UInt32(info.cores), threads: UInt32(info.threads))
    }

    /// The host's free memory in bytes (all NUMA cells). Calls `virNodeGetFreeMemory`, which
    /// answers 0 on failure.
    public func freeMemory() throws(LibvirtError) -> UInt64 {
        try call("virNodeGetFreeMemory") { () -> UInt64? in
            let bytes = virNodeGetFreeMemory(pointer)
            return bytes == 0 ? nil : UInt64(bytes)
        }
    }

    // MARK: Domains

    /// All domains matching `flags` (all of them when empty). Calls `virConnectListAllDomains`.
    public func listAllDomains(_ flags: ListDomainsFlags = []) throws(LibvirtError) -> [Domain] {
        var list: UnsafeMutablePointer<virDomainPtr?>? = nil
        let count = try call("virConnectListAllDomains") {
            virConnectListAllDomains(pointer, &list, flags.rawValue)
        }
        guard let list else { return [] }
        defer { free(list) }
        // The array is ours to free; each domain reference in it is handed over to a Domain.
        return (0..<Int(count)).compactMap { list[$0].map { Domain(owning: $0, connection: self) } }
    }

    /// The domain named `name`. Throws `.noDomain` if there is none. Calls `virDomainLookupByName`.
    public func lookupDomain(name: String) throws(LibvirtError) -> Domain {
        Domain(owning: try call("virDomainLookupByName") { virDomainLookupByName(pointer, name) }, connection: self)
    }

    /// The domain with this UUID. Throws `.noDomain` if there is none.
    /// Calls `virDomainLookupByUUIDString`.
    public func lookupDomain(uuid: UUID) throws(LibvirtError) -> Domain {
        let text = uuid.uuidString.lowercased()
        return Domain(
            owning: try call("virDomainLookupByUUIDString") { virDomainLookupByUUIDString(pointer, text) },
            connection: self)
    }

    /// Registers a persistent domain from XML (or updates the one with the same UUID).
    /// Calls `virDomainDefineXMLFlags`.
    public func defineDomain(xml: String, flags: DefineFlags = []) throws(LibvirtError) -> Domain {
        Domain(
            owning: try call("virDomainDefineXMLFlags") { virDomainDefineXMLFlags(pointer, xml, flags.rawValue) },
            connection: self)
    }

    /// Starts a transient domain from XML: it exists until it stops. Calls `virDomainCreateXML`.
    public func createDomain(xml: String, flags: Domain.StartFlags = []) throws(LibvirtError) -> Domain {
        Domain(
            owning: try call("virDomainCreateXML") { virDomainCreateXML(pointer, xml, flags.rawValue) },
            connection: self)
    }

    // MARK: Storage

    /// All storage pools. Calls `virConnectListAllStoragePools`.
    public func listAllStoragePools() throws(LibvirtError) -> [StoragePool] {
        var list: UnsafeMutablePointer<virStoragePoolPtr?>? = nil
        let count = try call("virConnectListAllStoragePools") {
            virConnectListAllStoragePools(pointer, &list, 0)
        }
        guard let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map { StoragePool(owning: $0, connection: self) } }
    }

    /// Starts a transient storage pool from XML; `build` makes its storage first (for a
    /// directory pool, the directory). Calls `virStoragePoolCreateXML`.
    public func createStoragePool(xml: String, build: Bool = false) throws(LibvirtError) -> StoragePool {
        let flags = build ? UInt32(VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue) : 0
        return StoragePool(
            owning: try call("virStoragePoolCreateXML") { virStoragePoolCreateXML(pointer, xml, flags) }, connection: self)
    }

    /// Defines a persistent storage pool from XML, inactive. Calls `virStoragePoolDefineXML`.
    public func defineStoragePool(xml: String) throws(LibvirtError) -> StoragePool {
        StoragePool(
            owning: try call("virStoragePoolDefineXML") { virStoragePoolDefineXML(pointer, xml, 0) }, connection: self)
    }

    /// The storage pool named `name`. Calls `virStoragePoolLookupByName`.
    public func lookupStoragePool(name: String) throws(LibvirtError) -> StoragePool {
        StoragePool(
            owning: try call("virStoragePoolLookupByName") { virStoragePoolLookupByName(pointer, name) },
            connection: self)
    }

    /// The volume at `path`, if a pool covers it. Throws `.noStorageVolume` otherwise.
    /// Calls `virStorageVolLookupByPath`.
    public func lookupStorageVolume(path: String) throws(LibvirtError) -> StorageVolume {
        StorageVolume(
            owning: try call("virStorageVolLookupByPath") { virStorageVolLookupByPath(pointer, path) },
            connection: self)
    }
}

/// A libvirt version number, decoded from libvirt's `major * 1,000,000 + minor * 1,000 + release`.
public struct Version: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let release: Int

    public init(major: Int, minor: Int, release: Int) {
        self.major = major
        self.minor = minor
        self.release = release
    }

    init(encoded: UInt) {
        self.init(major: Int(encoded / 1_000_000), minor: Int(encoded / 1000 % 1000), release: Int(encoded % 1000))
    }

    public var description: String { "\(major).\(minor).\(release)" }

    public static func < (a: Version, b: Version) -> Bool {
        (a.major, a.minor, a.release) < (b.major, b.minor, b.release)
    }
}

/// The host hardware as libvirt reports it (`virNodeInfo`).
public struct NodeInfo: Sendable, Hashable {
    public let model: String
    public let memoryKiB: UInt64
    public let cpus: UInt32
    public let mhz: UInt32
    public let nodes: UInt32
    public let sockets: UInt32
    public let cores: UInt32
    public let threads: UInt32
}
