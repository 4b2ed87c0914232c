import Foundation
internal import Libvirt

/// A guest's network interface and the addresses it has, as `VirtualMachine.addresses(from:)`
/// reports them.
public struct GuestInterface: Sendable, Codable, Equatable {
    public struct Address: Sendable, Codable, Equatable, CustomStringConvertible {
        public enum Family: String, Sendable, Codable { case ipv4, ipv6 }
        public var family: Family
        public var address: String
        public var prefix: Int
        public var description: String { "\(address)/\(prefix)" }
    }

    /// The interface's MAC address, from the VM's definition.
    public var mac: String
    /// The host-side device (vnet0) for leases and ARP, the guest's own name (eth0) for the agent.
    public var name: String?
    /// What the interface is attached to (a libvirt network's or a bridge's name).
    public var network: String?
    public var addresses: [Address]
    /// Where the addresses were learnt; nil when no source knows any.
    public var source: AddressSource?
}

/// Where libvirt learns a guest's addresses (`virDomainInterfaceAddressesSource`).
public enum AddressSource: String, Sendable, Codable, CaseIterable {
    /// The DHCP leases of libvirt's own networks (dnsmasq).
    case lease
    /// The host's ARP table: any bridge, once the guest has sent a packet.
    case arp
    /// qemu-guest-agent in the guest: every interface, also those with static addresses.
    case agent
}

extension VirtualMachine {
    /// The VM's network interfaces with their addresses, one per `<interface>` of its
    /// definition (matched by MAC), in its order. With no `sources`: the leases, then the ARP
    /// table, then qemu-guest-agent where the VM has its channel connected; an interface takes
    /// its addresses from the first source that knows any. Link-local IPv6 addresses are left
    /// out. Calls `virDomainInterfaceAddresses`.
    /// - Throws: code 5 if the VM is not running; code 1 for `.agent` when the VM has no
    ///   qemu-guest-agent channel.
    public func addresses(from sources: [AddressSource] = []) async throws(VMDriverError) -> [GuestInterface] {
        let label = self.label
        let host = self.host
        return try await host.blocking("cannot read the addresses of \(label)") { [domain] _ in
            let state = try Self.state(of: domain)
            guard state == .running || state == .paused else {
                throw VMDriverError(.invalidState, "\(label) is \(state): only a running VM has addresses")
            }
            let definition = try GuestDevices(xml: try domain.xmlDescription([]))
            if sources.contains(.agent) { try definition.requireAgent(label) }
            let order = sources.isEmpty ? [.lease, .arp] + (definition.agent == .connected ? [.agent] : []) : sources
            var interfaces = definition.interfaces.map {
                GuestInterface(mac: $0.mac, name: nil, network: $0.network, addresses: [], source: nil)
            }
            for source in order where interfaces.contains(where: \.addresses.isEmpty) {
                let found: [Domain.InterfaceAddresses]
                do {
                    found = try domain.interfaceAddresses(source: source.libvirt)
                } catch let error as LibvirtError
                    where sources.contains(source) && source == .arp && error.message.contains("nlmsg len")
                {
                    throw VMDriverError(.notSupported, AddressSource.brokenARPReason(error), cause: error)
                } catch let error as LibvirtError where !sources.contains(source) {
                    // Asked for by default, not by the caller: a source that does not answer (no
                    // agent yet) is skipped.
                    host.logger.debug("\(label): no addresses from \(source.rawValue): \(error.message)")
                    continue
                }
                for index in interfaces.indices where interfaces[index].addresses.isEmpty {
                    guard let match = found.first(where: { $0.mac?.lowercased() == interfaces[index].mac }) else { continue }
                    let addresses = match.addresses.compactMap(GuestInterface.Address.init)
                    guard !addresses.isEmpty else { continue }
                    interfaces[index].name = match.name
                    interfaces[index].addresses = addresses
                    interfaces[index].source = source
                }
            }
            return interfaces
        }
    }
}

extension GuestInterface.Address {
    /// libvirt's address, unless it is IPv6 link-local (fe80::/10), which nothing outside the
    /// link can reach.
    init?(_ address: Domain.InterfaceAddresses.Address) {
        let family: Family = address.family == 6 ? .ipv6 : .ipv4
        if family == .ipv6, ["fe8", "fe9", "fea", "feb"].contains(address.address.lowercased().prefix(3)) { return nil }
        self.init(family: family, address: address.address, prefix: Int(address.prefix))
    }
}

extension AddressSource {
    /// libvirt's ARP source reads the host's whole neighbour table over netlink and refuses
    /// the answer of some kernels ("wrong nlmsg len") while `ip neigh` reads the same table
    /// (PLATFORM.md): a platform fault, said as code 1 rather than as a failure.
    static func brokenARPReason(_ error: LibvirtError) -> String {
        "libvirt cannot read this host's ARP table (\(error.message); `virsh domifaddr --source arp` fails the same way "
            + "while `ip neigh` lists the guest): ask the leases (--source lease) or qemu-guest-agent (--source agent)"
    }

    var libvirt: Domain.InterfaceAddressSource {
        switch self {
        case .lease: .lease
        case .arp: .arp
        case .agent: .agent
        }
    }
}

/// The devices of a running VM's definition that tell whether and where it can be reached.
struct GuestDevices {
    /// The name of qemu-guest-agent's virtio-serial port.
    static let agentPort = "org.qemu.guest_agent.0"

    enum Agent: Equatable {
        case none
        /// The channel is there; libvirt has not seen the agent open it.
        case disconnected
        case connected
    }

    struct Interface {
        var mac: String
        var network: String?
    }

    var interfaces: [Interface]
    var agent: Agent
    /// The file the first serial port writes to (its `<source path>` for a file port, or its
    /// `<log file>`).
    var serialLog: String?

    init(xml: String) throws(VMDriverError) {
        let root: XMLTree
        do {
            root = try XMLTree.parse(xml)
        } catch {
            throw VMDriverError(.failed, "libvirt returned a domain definition VMDriver cannot read: \(error)")
        }
        let devices = root.child("devices")
        interfaces = (devices?.children("interface") ?? []).compactMap { interface in
            guard let mac = interface.child("mac")?.attributes["address"]?.lowercased() else { return nil }
            let source = interface.child("source")
            return Interface(mac: mac, network: source?.attributes["network"] ?? source?.attributes["bridge"])
        }
        let channel = (devices?.children("channel") ?? []).first {
            $0.child("target")?.attributes["name"] == Self.agentPort
        }
        agent =
            channel == nil ? .none : channel?.child("target")?.attributes["state"] == "connected" ? .connected : .disconnected
        let serial = devices?.children("serial").first
        serialLog =
            serial?.child("log")?.attributes["file"]
            ?? (serial?.attributes["type"] == "file" ? serial?.child("source")?.attributes["path"] : nil)
    }

    func requireAgent(_ label: String) throws(VMDriverError) {
        guard agent == .none else { return }
        throw VMDriverError(
            .notSupported,
            "\(label) has no qemu-guest-agent channel (a <channel type='unix'> with <target type='virtio' name='\(Self.agentPort)'/>): "
                + "add one and run qemu-guest-agent in the guest")
    }
}
