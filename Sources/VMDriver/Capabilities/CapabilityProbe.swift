import Foundation
internal import Libvirt

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
        for type in Capabilities.MigrationType.concrete {
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
            features[.tcgLive] = Self.tcgLive(qemu: qemu, version: facts.version)
        }

        return Capabilities(
            host: host.name, uri: host.uri, driver: host.driver, hypervisor: facts.type,
            hypervisorVersion: facts.version, libvirtVersion: facts.libvirt.description,
            accelerators: accelerators, linuxDomainType: linuxType,
            cloneTypes: cloneTypes, cloneIdentity: [.seed: NoCloudSeed.support, .sysprep: Sysprep.support(on: host)],
            migrationTypes: migrationTypes, transports: transports,
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

    /// Whether a TCG guest can move live without losing writes. Before QEMU 9.0 the fast path of
    /// the migration's dirty-bitmap sync cleared the dirty bits of whole aligned ranges without
    /// resetting TCG's TLB, so stores through TLB entries made earlier set no dirty bit again and
    /// the target got stale pages (QEMU commit 03bfc2188f, in 9.0). `scripts/tcg-pages.sh` shows
    /// it with plain virsh beside VMDriver (RELIABILITY.md). A distribution may backport the fix:
    /// VMDriver goes by the version it can see.
    static func tcgLive(qemu: Version, version: String) -> Capabilities.Support {
        qemu >= Version(major: 9, minor: 0, release: 0)
            ? .available("QEMU \(version) tracks a TCG guest's writes while its memory moves")
            : .unavailable(
                "QEMU \(version) under TCG misses some guest writes while memory moves live (fixed in QEMU 9.0 by "
                    + "'physmem: Fix migration dirty bitmap coherency with TCG memory access'): TCG guests move warm, "
                    + "paused while their memory moves")
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

extension Version {
    /// Parses "7.2.0".
    init(parsing text: String) {
        let parts = text.split(separator: ".").map { Int($0) ?? 0 } + [0, 0, 0]
        self.init(major: parts[0], minor: parts[1], release: parts[2])
    }
}
