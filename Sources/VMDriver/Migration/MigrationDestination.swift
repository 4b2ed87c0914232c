import Foundation

/// Where a VM migrates to: CIM's DestinationHost in one of the formats VMDriver supports
/// (`Capabilities.destinationHostFormats`): a DNS name, an IPv4 or IPv6 address, each with an
/// optional port (the vendors' target_port), or a libvirt URI.
public struct MigrationDestination: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case dnsName = "dns-name"
        case ipv4
        case ipv6
        case libvirtURI = "libvirt-uri"
    }

    public let kind: Kind
    /// The host: a name or an address (IPv6 without brackets).
    public let host: String
    /// The libvirt port, when given.
    public let port: Int?
    /// The URI as given, for `.libvirtURI`.
    public let uri: String?

    public var description: String { uri ?? (port.map { "\(hostForURI):\($0)" } ?? host) }

    /// The host as it stands in a URI: IPv6 in brackets.
    var hostForURI: String { kind == .ipv6 || host.contains(":") ? "[\(host)]" : host }

    static let formats =
        "a DNS name, an IPv4 address or an IPv6 address (each with an optional :PORT; IPv6 as [ADDR]:PORT), or a libvirt URI such as qemu+tls://host/system"

    /// Parses a destination; code 4 naming the accepted formats otherwise.
    public init(parsing text: String) throws(VMDriverError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let refuse = { (why: String) -> VMDriverError in
            VMDriverError(.invalidParameter, "'\(text)' is not a migration destination (\(why)): give \(Self.formats)")
        }
        guard !text.isEmpty else { throw refuse("it is empty") }
        guard text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0.value < 127 }) else {
            throw refuse("it contains spaces, control or non-ASCII characters")
        }
        if text.contains("://") {
            // RFC 3986's characters only: Foundation reads a URI with a quote or a brace in it
            // one way, libvirt's parser another.
            guard text.unicodeScalars.allSatisfy({ Self.uriCharacters.contains($0) }) else {
                throw refuse("a URI holds only letters, digits and -._~:/?#[]@!$&'()*+,;=%")
            }
            // A % starts an escape (two hex digits), or Foundation stops decoding the query.
            let scalars = Array(text.unicodeScalars)
            for (index, scalar) in scalars.enumerated() where scalar == "%" {
                guard index + 2 < scalars.count,
                    scalars[index + 1].properties.isASCIIHexDigit, scalars[index + 2].properties.isASCIIHexDigit
                else { throw refuse("a % in a URI must start an escape such as %2F") }
            }
            guard text.removingPercentEncoding != nil else { throw refuse("its % escapes are not UTF-8") }
            // Brackets belong around an IPv6 host; elsewhere Foundation stops decoding the query.
            let afterAuthority = text[text.range(of: "://")!.upperBound...].drop { $0 != "/" }
            guard !afterAuthority.contains("[") && !afterAuthority.contains("]") else {
                throw refuse("[ and ] may only enclose an IPv6 host")
            }
            guard let components = URLComponents(string: text), let scheme = components.scheme,
                scheme == "qemu" || scheme.hasPrefix("qemu+"), let host = components.host, !host.isEmpty
            else { throw refuse("a libvirt URI here must be qemu[+TRANSPORT]://HOST/system") }
            // libvirt's ext transport runs the URI's `command`, and the ssh ones run `command`
            // here and `netcat` through the remote host's shell: a destination must not be a
            // way to run programs, so only network transports without those parameters.
            guard Self.transports.contains(scheme) else {
                throw refuse("the transport must be one of \(Self.transports.joined(separator: ", "))")
            }
            if let key = components.queryItems?.first(where: { Self.refusedParameters.contains($0.name.lowercased()) }) {
                throw refuse("the URI parameter '\(key.name)' would make libvirt run a program")
            }
            guard components.fragment == nil else { throw refuse("a libvirt URI has no #fragment") }
            if let port = components.port, !(1...65535).contains(port) {
                throw refuse("the port is not 1-65535")
            }
            guard ["/system", "/session"].contains(components.path) else {
                throw refuse("the URI's path must be /system or /session")
            }
            let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
            guard host.hasPrefix("[") ? Self.isIPv6(bare) : Self.isIPv4(bare) || Self.isDNSName(bare) else {
                throw refuse("'\(host)' is not a host name or address")
            }
            kind = .libvirtURI
            self.host = bare
            port = components.port
            uri = text
            return
        }
        uri = nil
        // [v6]:port or [v6]
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw refuse("an IPv6 address in [ ] is not closed") }
            let address = String(text[text.index(after: text.startIndex)..<close])
            guard Self.isIPv6(address) else { throw refuse("'\(address)' is not an IPv6 address") }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                port = nil
            } else {
                guard rest.hasPrefix(":"), let port = Self.port(String(rest.dropFirst())) else {
                    throw refuse("the port is not 1-65535")
                }
                self.port = port
            }
            kind = .ipv6
            host = address
            return
        }
        if text.filter({ $0 == ":" }).count >= 2 {
            guard Self.isIPv6(text) else { throw refuse("it is not an IPv6 address") }
            kind = .ipv6
            host = text
            port = nil
            return
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        if parts.count == 2 {
            guard let port = Self.port(parts[1]) else { throw refuse("the port is not 1-65535") }
            self.port = port
        } else {
            port = nil
        }
        if Self.isIPv4(name) {
            kind = .ipv4
        } else if name.split(separator: ".").allSatisfy({ Int($0) != nil }) {
            throw refuse("it looks like an IPv4 address but is not one")
        } else if Self.isDNSName(name) {
            kind = .dnsName
        } else {
            throw refuse("it is not a valid host name")
        }
        host = name
    }

    static let uriCharacters = CharacterSet(
        charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%")

    /// The libvirt transports a destination URI may name.
    static let transports = ["qemu", "qemu+tcp", "qemu+tls", "qemu+ssh", "qemu+libssh", "qemu+libssh2"]
    /// URI parameters that name programs libvirt runs (virsh's `command=`, `netcat=`).
    static let refusedParameters: Set<String> = ["command", "netcat"]

    /// Whether the URI turns certificate checks off (libvirt's `no_verify=1`).
    var disablesVerification: Bool {
        guard let uri, let items = URLComponents(string: uri)?.queryItems else { return false }
        return items.contains { $0.name.lowercased() == "no_verify" && $0.value != "0" }
    }

    static func port(_ text: String) -> Int? {
        guard let value = Int(text), (1...65535).contains(value), String(value) == text else { return nil }
        return value
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                guard let value = Int(part), (0...255).contains(value) else { return false }
                return String(value) == part
            }
    }

    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending with a hyphen.
    static func isDNSName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
        } && labels.last?.allSatisfy(\.isNumber) == false
    }
}
