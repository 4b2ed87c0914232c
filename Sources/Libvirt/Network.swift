internal import CLibvirt
import Foundation

/// A libvirt virtual network (`default`, an isolated test network …). Reference counted and
/// thread-safe in libvirt, so the handle is `@unchecked Sendable`; `deinit` frees the reference.
public final class Network: @unchecked Sendable {
    let pointer: virNetworkPtr
    public let connection: Connection

    init(owning pointer: virNetworkPtr, connection: Connection) {
        self.pointer = pointer
        self.connection = connection
    }

    deinit { virNetworkFree(pointer) }

    /// The network's name. Calls `virNetworkGetName`.
    public func name() throws(LibvirtError) -> String {
        String(cString: try call("virNetworkGetName") { virNetworkGetName(pointer) })
    }

    /// Whether the network is active (its bridge is up). Calls `virNetworkIsActive`.
    public func isActive() throws(LibvirtError) -> Bool {
        try call("virNetworkIsActive") { virNetworkIsActive(pointer) } == 1
    }
}

extension Connection {
    /// The network named `name`. Throws `.noNetwork` if there is none.
    /// Calls `virNetworkLookupByName`.
    public func lookupNetwork(name: String) throws(LibvirtError) -> Network {
        Network(owning: try call("virNetworkLookupByName") { virNetworkLookupByName(pointer, name) }, connection: self)
    }
}
