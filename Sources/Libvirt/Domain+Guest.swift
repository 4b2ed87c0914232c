internal import CLibvirt
import Foundation

extension Domain {
    /// Where libvirt learns a guest's addresses: `virDomainInterfaceAddressesSource`.
    public enum InterfaceAddressSource: UInt32, Sendable, CaseIterable {
        /// VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE: the DHCP leases of libvirt's own networks.
        case lease = 0
        /// VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT: qemu-guest-agent in the guest.
        case agent = 1
        /// VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP: the host's ARP table.
        case arp = 2
    }

    /// One interface of the guest and its addresses (`virDomainInterface`).
    public struct InterfaceAddresses: Sendable, Equatable {
        public struct Address: Sendable, Equatable {
            /// `virIPAddrType`: 4 or 6.
            public var family: Int
            public var address: String
            public var prefix: UInt32
        }
        /// The interface's name (the host-side tap device for leases and ARP, the guest's own
        /// name for the agent).
        public var name: String
        public var mac: String?
        public var addresses: [Address]
    }

    /// The guest's interfaces and addresses as `source` knows them. Calls
    /// `virDomainInterfaceAddresses`.
    public func interfaceAddresses(source: InterfaceAddressSource) throws(LibvirtError) -> [InterfaceAddresses] {
        var interfaces: UnsafeMutablePointer<virDomainInterfacePtr?>? = nil
        let count = try call("virDomainInterfaceAddresses") {
            virDomainInterfaceAddresses(pointer, &interfaces, source.rawValue, 0)
        }
        defer {
            if let interfaces {
                for index in 0..<Int(count) { virDomainInterfaceFree(interfaces[index]) }
                free(interfaces)
            }
        }
        return (0..<Int(count)).compactMap { index in
            guard let interface = interfaces?[index]?.pointee else { return nil }
            let addresses = (0..<Int(interface.naddrs)).compactMap { i -> InterfaceAddresses.Address? in
                guard let entry = interface.addrs?[i], let text = entry.addr else { return nil }
                let family = entry.type == Int32(VIR_IP_ADDR_TYPE_IPV6.rawValue) ? 6 : 4
                return InterfaceAddresses.Address(family: family, address: String(cString: text), prefix: entry.prefix)
            }
            return InterfaceAddresses(
                name: interface.name.map { String(cString: $0) } ?? "", mac: interface.hwaddr.map { String(cString: $0) },
                addresses: addresses)
        }
    }

    /// Sends one command to qemu-guest-agent in the guest (a JSON object such as
    /// `{"execute":"guest-ping"}`) and returns its JSON answer; waits up to `seconds`. Calls
    /// `virDomainQemuAgentCommand`.
    public func agentCommand(_ command: String, timeoutSeconds seconds: Int32) throws(LibvirtError) -> String {
        let answer = try call("virDomainQemuAgentCommand") { virDomainQemuAgentCommand(pointer, command, seconds, 0) }
        return takeString(answer)
    }
}
