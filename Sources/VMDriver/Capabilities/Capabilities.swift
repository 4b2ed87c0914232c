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
    /// What can make a clone a new machine inside (`CloneOptions`).
    public enum CloneIdentity: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        /// A NoCloud seed for cloud-init (`hostname`, `sshKeys`, `userData`, `networkConfig`).
        case seed
        /// virt-sysprep on the clone's disks (`sysprep`).
        case sysprep
    }
    /// The migration types, as `MigrationOptions` names them; capabilities list hot, warm and
    /// cold (`auto` picks one of them).
    public typealias MigrationType = MigrationOptions.MigrationType
    public enum Transport: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case unix, tcp, tls, ssh
    }
    /// The security levels, as `MigrationOptions` names them.
    public typealias SecurityLevel = MigrationOptions.Security
    /// CIM DestinationHostFormatsSupported: the destination formats `MigrationDestination` parses.
    public typealias DestinationFormat = MigrationDestination.Kind
    public enum Feature: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
        case postcopy
        /// Parallel migration streams (QEMU multifd).
        case multifd
        /// XBZRLE compression of re-sent pages.
        case compression
        case autoConverge = "auto-converge"
        /// Live moves (hot, post-copy) of TCG guests (domain type `qemu`) that lose none of the
        /// guest's writes: QEMU before 9.0 misses some of them in its dirty-page tracking under
        /// TCG (fixed by QEMU commit 03bfc2188f, "physmem: Fix migration dirty bitmap coherency
        /// with TCG memory access"). Where unavailable, TCG guests move warm. KVM guests are
        /// not concerned.
        case tcgLive = "tcg-live"
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
    public var cloneIdentity: [CloneIdentity: Support]
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
    /// - Parameters:
    ///   - refresh: probe again even when the kept results are less than a day old.
    ///   - pkiPath: the folder with the TLS client certificate (libvirt's `pkipath`:
    ///     cacert.pem, clientcert.pem, clientkey.pem); default `VMDRIVER_PKIPATH`, else libvirt's
    ///     default paths under /etc/pki.
    public func capabilities(refresh: Bool = false, pkiPath: String? = nil) async throws(VMDriverError) -> Capabilities {
        try await CapabilityProbe(host: self, refresh: refresh, pkiPath: pkiPath).run()
    }
}
