import Foundation
internal import Libvirt

/// The certificates libvirt and QEMU use for TLS: the client's in a pkipath folder, or at
/// libvirt's default paths for root.
struct PKI {
    /// The client's pkipath (libvirt's URI parameter); nil: `VMDRIVER_PKIPATH`, else none.
    var path: String?

    init(path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.path = path ?? environment["VMDRIVER_PKIPATH"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The client's files, as libvirt reads them for qemu+tls:// (role, path).
    var clientFiles: [(role: String, path: String)] {
        if let path {
            return [
                ("CA certificate", "\(path)/cacert.pem"), ("client certificate", "\(path)/clientcert.pem"),
                ("client key", "\(path)/clientkey.pem"),
            ]
        }
        return [
            ("CA certificate", "/etc/pki/CA/cacert.pem"), ("client certificate", "/etc/pki/libvirt/clientcert.pem"),
            ("client key", "/etc/pki/libvirt/private/clientkey.pem"),
        ]
    }

    private func missing(_ paths: [String]) -> [String] {
        paths.filter { !FileManager.default.isReadableFile(atPath: $0) }
    }

    /// libvirt's client side of qemu+tls:// (and of the control connection of a TLS migration).
    var clientReady: Capabilities.Support {
        if let path {
            let gone = missing(["cacert.pem", "clientcert.pem", "clientkey.pem"].map { "\(path)/\($0)" })
            return gone.isEmpty
                ? .available("qemu+tls:// with the client certificate in \(path)")
                : .unavailable("no TLS client certificate: missing \(gone.joined(separator: ", "))")
        }
        let gone = missing([
            "/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/clientcert.pem", "/etc/pki/libvirt/private/clientkey.pem",
        ])
        return gone.isEmpty
            ? .available("qemu+tls:// with the client certificate in /etc/pki/libvirt")
            : .unavailable("no TLS client certificate: missing \(gone.joined(separator: ", "))")
    }

    /// QEMU's native TLS for migration data (VIR_MIGRATE_TLS).
    var qemuReady: Capabilities.Support {
        let gone = missing(
            ["ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"].map {
                "/etc/pki/qemu/\($0)"
            })
        return gone.isEmpty
            ? .available("QEMU native TLS with the certificates in /etc/pki/qemu")
            : .unavailable("QEMU has no TLS certificates for migration data: missing \(gone.joined(separator: ", "))")
    }
}
