import Foundation
internal import Libvirt

/// What a host can do, computed from the host itself: the counterpart of
/// CIM_VirtualSystemMigrationCapabilities, extended to cloning and accelerators. Every operation
/// asks this first and answers code 1 with the reason when the host lacks what it needs.
public struct Capabilities: Sendable, Codable, Equatable {
    /// Whether a feature is there, and why not (or what was checked).
    public struct Support: Sendable, Codable, Equatable {
        public enum Status: String, Sendable, Codable {
            case available
            case unavailable
            /// Could not be checked from here (for example a file on a remote host).
            case unknown
        }
        public var status: Status
        public var reason: String?

        public var isAvailable: Bool { status == .available }

        static func available(_ reason: String? = nil) -> Support { Support(status: .available, reason: reason) }
        static func unavailable(_ reason: String) -> Support { Support(status: .unavailable, reason: reason) }
        static func unknown(_ reason: String) -> Support { Support(status: .unknown, reason: reason) }
        static func when(_ condition: Bool, _ yes: String? = nil, else no: String) -> Support {
            condition ? .available(yes) : .unavailable(no)
        }

        /// Throws code 1 ("not supported") naming `what` and the reason, unless available.
        public func require(_ what: String, on host: String) throws(VMDriverError) {
            guard status != .available else { return }
            throw VMDriverError(
                .notSupported,
                "\(what) is not supported on host '\(host)': \(reason ?? "the host does not offer it")")
        }
    }

    /// One accelerator: whether libvirt offers it and whether it actually runs guests.
    public struct Accelerator: Sendable, Codable, Equatable {
        /// `kvm` or `tcg` (libvirt domain type `qemu`) …
        public var name: String
        /// The libvirt domain type that selects it.
        public var domainType: String
        /// libvirt lists it for this host.
        public var offered: Bool
        /// It runs a real-mode guest (a boot sector).
        public var runsGuests: Support
        /// It runs a Linux guest (protected and long mode, timers, interrupts).
        public var runsLinuxGuests: Support
    }

    public enum CloneType: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case full, linked
    }
    public enum MigrationType: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case hot, warm, cold
    }
    public enum Transport: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case unix, tcp, tls, ssh
    }
    public enum SecurityLevel: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case low, normal, high
    }
    /// CIM DestinationHostFormatsSupported.
    public enum DestinationFormat: String, Sendable, Codable, CaseIterable {
        case dnsName = "dns-name"
        case ipv4
        case ipv6
        case libvirtURI = "libvirt-uri"
    }
    public enum Feature: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case postcopy
        /// Parallel migration streams (QEMU multifd).
        case multifd
        /// XBZRLE compression of re-sent pages.
        case compression
        case autoConverge = "auto-converge"
    }

    public var host: String
    public var uri: String
    /// The libvirt driver: qemu, test …
    public var driver: String
    /// The hypervisor as libvirt names it (QEMU, TEST) and its version.
    public var hypervisor: String
    public var hypervisorVersion: String
    public var libvirtVersion: String
    public var accelerators: [Accelerator]
    /// The domain type to give a Linux guest here: `kvm` when KVM runs Linux guests, else `qemu` (TCG).
    public var linuxDomainType: String?
    public var cloneTypes: [CloneType: Support]
    public var migrationTypes: [MigrationType: Support]
    public var transports: [Transport: Support]
    public var securityLevels: [SecurityLevel: Support]
    public var destinationHostFormats: [DestinationFormat]
    public var features: [Feature: Support]
}

extension Host {
    /// Computes the host's capabilities: asks libvirt, probes the accelerators, and looks at the
    /// tools and certificates on the host (local hosts only; on a remote host such items are
    /// `unknown`). The accelerator probe boots a 512-byte guest under each accelerator; its
    /// results are kept for a day unless `refresh`.
    /// - Parameter pkiPath: the folder with the TLS client certificate (libvirt's `pkipath`:
    ///   cacert.pem, clientcert.pem, clientkey.pem); default `VMDRIVER_PKIPATH`, else libvirt's
    ///   default paths under /etc/pki.
    public func capabilities(refresh: Bool = false, pkiPath: String? = nil) async throws(VMDriverError) -> Capabilities {
        try await CapabilityProbe(host: self, refresh: refresh, pkiPath: pkiPath).run()
    }
}

/// The checks behind `Host.capabilities()`.
struct CapabilityProbe {
    let host: Host
    var refresh = false
    /// Operations that only need to know about disks or migration skip the accelerator probe.
    var probeAccelerators = true
    /// The client's pkipath for TLS; nil: `VMDRIVER_PKIPATH`, else libvirt's default paths.
    var pkiPath: String? = nil

    func run() async throws(VMDriverError) -> Capabilities {
        let host = self.host
        let facts = try await host.blocking("reading the capabilities of \(host.label)") { connection in
            (
                type: try connection.hypervisorType(),
                version: (try? connection.hypervisorVersion())?.description ?? "unknown",
                libvirt: try connection.libraryVersion(),
                capabilitiesXML: try connection.capabilitiesXML()
            )
        }
        let isQEMU = host.driver == "qemu"
        let offered = Self.domainTypes(in: facts.capabilitiesXML)
        let hypervisorVersion = Version(parsing: facts.version)

        var accelerators: [Capabilities.Accelerator] = []
        if isQEMU && probeAccelerators {
            accelerators = await AcceleratorProbe.shared.results(
                for: host, offered: offered, versions: "\(facts.version)|\(facts.libvirt)", refresh: refresh)
        }
        let linuxType =
            accelerators.first { $0.domainType == "kvm" && $0.runsLinuxGuests.isAvailable }?.domainType
            ?? accelerators.first { $0.domainType == "qemu" && $0.runsLinuxGuests.status != .unavailable }?.domainType
            ?? (host.driver == "test" ? "test" : nil)

        let local = !host.isRemote
        let cloneTypes = Self.cloneTypes(on: host)

        var migrationTypes: [Capabilities.MigrationType: Capabilities.Support] = [:]
        for type in Capabilities.MigrationType.allCases {
            migrationTypes[type] =
                isQEMU ? .available() : .unavailable("the \(host.driver) driver does not migrate")
        }

        let pki = PKI(path: pkiPath)
        var transports: [Capabilities.Transport: Capabilities.Support] = [:]
        transports[.unix] = local ? .available("local socket") : .unavailable("the host is remote")
        transports[.tcp] = .available("qemu+tcp://, plain text: use only on a trusted network")
        transports[.tls] = pki.clientReady
        transports[.ssh] = .when(
            Subprocess.which("ssh") != nil, "qemu+ssh://", else: "no ssh client is installed (apt-get install openssh-client)")

        var security: [Capabilities.SecurityLevel: Capabilities.Support] = [:]
        security[.low] =
            isQEMU ? .available("plain TCP for control and data") : .unavailable("the \(host.driver) driver does not migrate")
        // `migrate --security normal` dials qemu+tls:// (MigrationPlan.peerURI): without a client
        // certificate it cannot, whatever else is installed.
        security[.normal] =
            !isQEMU
            ? .unavailable("the \(host.driver) driver does not migrate")
            : pki.clientReady.isAvailable
                ? .available("control connection over TLS (\(pki.clientReady.reason ?? "client certificate found"))")
                : .unavailable("the control connection uses TLS: \(pki.clientReady.reason ?? "no client certificate")")
        security[.high] =
            !isQEMU
            ? .unavailable("the \(host.driver) driver does not migrate")
            : local ? pki.qemuReady : .unknown("QEMU's certificates on a remote host cannot be checked from here")

        var features: [Capabilities.Feature: Capabilities.Support] = [:]
        if !isQEMU {
            for feature in Capabilities.Feature.allCases {
                features[feature] = .unavailable("the \(host.driver) driver does not migrate")
            }
        } else {
            let qemu = hypervisorVersion
            features[.compression] = .when(
                qemu >= Version(major: 1, minor: 2, release: 0), "XBZRLE",
                else: "QEMU \(facts.version) has no XBZRLE compression (1.2 or later needed)")
            features[.autoConverge] = .when(
                qemu >= Version(major: 1, minor: 6, release: 0), "QEMU throttles the guest's vCPUs",
                else: "QEMU \(facts.version) has no auto-converge (1.6 or later needed)")
            features[.multifd] = .when(
                qemu >= Version(major: 4, minor: 0, release: 0) && facts.libvirt >= Version(major: 5, minor: 2, release: 0),
                "parallel migration streams",
                else: "multifd needs QEMU 4.0 and libvirt 5.2 (have QEMU \(facts.version), libvirt \(facts.libvirt))")
            features[.postcopy] =
                local ? Self.postcopy(qemu: qemu) : .unknown("userfaultfd on a remote host cannot be checked from here")
        }

        return Capabilities(
            host: host.name, uri: host.uri, driver: host.driver, hypervisor: facts.type,
            hypervisorVersion: facts.version, libvirtVersion: facts.libvirt.description,
            accelerators: accelerators, linuxDomainType: linuxType,
            cloneTypes: cloneTypes, migrationTypes: migrationTypes, transports: transports,
            securityLevels: security,
            destinationHostFormats: isQEMU ? Capabilities.DestinationFormat.allCases : [],
            features: features)
    }

    /// Which clone types `host` supports: known from its driver and its storage seam, with no
    /// call to the host (a clone asks this before every clone).
    static func cloneTypes(on host: Host) -> [Capabilities.CloneType: Capabilities.Support] {
        var cloneTypes: [Capabilities.CloneType: Capabilities.Support] = [:]
        if host.driver != "qemu" {
            let notQEMU = "the \(host.driver) driver has no real disks or guests"
            cloneTypes[.full] = .unavailable(notQEMU)
            cloneTypes[.linked] = .unavailable(notQEMU)
        } else {
            // Made by the host's storage seam, so it says how: the same code then makes them.
            cloneTypes = host.storage.cloneTypes
        }
        return cloneTypes
    }

    /// The `<domain type=…>` values libvirt offers for x86_64 guests.
    static func domainTypes(in capabilitiesXML: String) -> Set<String> {
        var types: Set<String> = []
        var rest = Substring(capabilitiesXML)
        while let range = rest.range(of: "<domain type='") {
            rest = rest[range.upperBound...]
            if let end = rest.firstIndex(of: "'") { types.insert(String(rest[..<end])) }
        }
        return types
    }

    /// Postcopy needs QEMU 2.5 and userfaultfd for QEMU's user: QEMU runs unprivileged as
    /// libvirt-qemu, which the kernel denies unless `vm.unprivileged_userfaultfd = 1`.
    static func postcopy(qemu: Version) -> Capabilities.Support {
        guard qemu >= Version(major: 2, minor: 5, release: 0) else {
            return .unavailable("QEMU \(qemu) has no postcopy (2.5 or later needed)")
        }
        let sysctl = (try? String(contentsOfFile: "/proc/sys/vm/unprivileged_userfaultfd", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if sysctl == "1" { return .available("vm.unprivileged_userfaultfd = 1") }
        if sysctl == nil { return .available("this kernel does not restrict userfaultfd") }
        return .unavailable(
            "QEMU runs unprivileged and the kernel denies it userfaultfd (vm.unprivileged_userfaultfd = \(sysctl ?? "?")); "
                + "set it with: sysctl vm.unprivileged_userfaultfd=1")
    }
}

/// The certificates libvirt and QEMU use for TLS: the client's in a pkipath folder, or at
/// libvirt's default paths for root.
struct PKI {
    /// The client's pkipath (libvirt's URI parameter); nil: `VMDRIVER_PKIPATH`, else none.
    var path: String?

    init(path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.path = path ?? environment["VMDRIVER_PKIPATH"].flatMap { $0.isEmpty ? nil : $0 }
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

extension Version {
    /// Parses "7.2.0".
    init(parsing text: String) {
        let parts = text.split(separator: ".").map { Int($0) ?? 0 } + [0, 0, 0]
        self.init(major: parts[0], minor: parts[1], release: parts[2])
    }
}
