import Foundation
import Libvirt
import Testing
import VMDriver

/// The two-host testbed `scripts/test.sh` brings up with `scripts/testbed.sh up`: hosta and
/// hostb, each its own libvirtd in its own namespaces. Tests that need it are enabled only when
/// test.sh exported where the hosts are.
package enum Testbed {
    package static let environment = ProcessInfo.processInfo.environment
    package static let enabled = Integration.enabled && environment["VMDRIVER_TESTBED_HOSTA_URI"] != nil
    package static let root = environment["VMDRIVER_TESTBED"] ?? "/var/lib/vmdriver-testbed"

    package enum Name: String, CaseIterable, Sendable, CustomStringConvertible {
        case hosta, hostb
        package var other: Name { self == .hosta ? .hostb : .hosta }
        package var description: String { rawValue }
        package var uri: String { Testbed.environment["VMDRIVER_TESTBED_\(rawValue.uppercased())_URI"] ?? "" }
        package var address: String { Testbed.environment["VMDRIVER_TESTBED_\(rawValue.uppercased())_ADDR"] ?? "" }
        /// This host's own images folder (`/var/lib/libvirt/images` inside it), from here.
        package var imagesFromHere: String { "\(Testbed.root)/\(rawValue)/lib/images" }
        /// Where this host keeps QEMU's certificates (its /etc/pki/qemu), from here.
        package var qemuPKIFromHere: String { "\(Testbed.root)/\(rawValue)/pki/qemu" }
    }

    /// The folder both hosts see at the same path (pool "shared").
    package static var shared: String { "\(root)/shared" }
    /// The pkipath for TLS connections from this namespace.
    package static var clientPKI: String { "\(root)/client" }

    /// A plain connection to a host, for checks that must not depend on the code under test.
    package static func connection(_ host: Name) throws -> Connection { try Connection(uri: host.uri) }

    /// The names of the domains a host has defined or running whose name starts with `prefix`.
    package static func domains(on host: Name, prefix: String) throws -> [String] {
        let connection = try connection(host)
        defer { try? connection.close() }
        return try connection.listAllDomains().compactMap { try? $0.name() }.filter { $0.hasPrefix(prefix) }
    }

    /// QEMU processes of a guest on a host (by its name on QEMU's command line).
    package static func qemuProcesses(named name: String) -> Int {
        let pids = (try? run("pgrep", ["-f", "guest=\(name),"])) ?? ""
        return pids.split(whereSeparator: \.isNewline).count
    }
}

/// One test's Linux guest on the testbed: its disk on shared storage (both hosts see it) or in
/// one host's own images folder, its serial log on shared storage so it can be read whichever
/// host runs it. `cleanUp()` removes its domains and files from both hosts.
package final class TestbedGuest {
    package enum Placement { case shared, local(Testbed.Name) }

    package let name: String
    package let placement: Placement
    package let domainType: String

    package init(_ label: String, placement: Placement = .shared, domainType: String) {
        name = "vmdriver-mig-\(label)-\(UUID().uuidString.prefix(6).lowercased())"
        self.placement = placement
        self.domainType = domainType
    }

    /// The disk's path as libvirt sees it (inside the hosts).
    package var diskPath: String {
        switch placement {
        case .shared: "\(Testbed.shared)/\(name).qcow2"
        case .local: "/var/lib/libvirt/images/\(name).qcow2"
        }
    }
    /// The disk's path from here on a host.
    package func diskFromHere(on host: Testbed.Name) -> String {
        switch placement {
        case .shared: diskPath
        case .local: "\(host.imagesFromHere)/\(name).qcow2"
        }
    }
    package var serialPath: String { "\(Testbed.shared)/\(name).serial.log" }
    package var log: SerialLog { SerialLog(url: URL(fileURLWithPath: serialPath)) }

    /// Defines the guest on `host` with a copy of the fixture data disk and starts it; waits for
    /// its first heartbeat.
    /// `diskReady`: the test made the disk (an overlay, say) at `diskFromHere(on:)` itself.
    package func boot(
        on host: Testbed.Name, tag: String = "mig", cmdline extra: String = "", start: Bool = true, diskReady: Bool = false
    ) async throws {
        let disk = diskFromHere(on: host)
        if !diskReady {
            try FileManager.default.copyItem(
                at: Integration.fixtures.appendingPathComponent("data.qcow2"), to: URL(fileURLWithPath: disk))
        }
        let xml = try Integration.fill(
            "linux-domain.xml.in",
            [
                "@NAME@": name, "@DISK@": diskPath, "@SERIAL@": serialPath,
                "@KERNEL@": Integration.fixtures.appendingPathComponent("vmlinuz").path,
                "@INITRD@": Integration.fixtures.appendingPathComponent("initrd.img").path,
                "@TAG@": extra.isEmpty ? tag : "\(tag) \(extra)", "@DOMAIN_TYPE@": domainType,
            ])
        let connection = try Testbed.connection(host)
        defer { try? connection.close() }
        let domain = try connection.defineDomain(xml: xml)
        // The pool must know the new image (the storage API answers from its last refresh).
        for pool in (try? connection.listAllStoragePools()) ?? [] { try? pool.refresh() }
        guard start else { return }
        try domain.start()
        let booted = await Integration.waitFor(60) { self.log.heartbeats().count >= 1 }
        try #require(booted, "guest \(name) did not boot on \(host): \(log.lines().suffix(5))")
    }

    /// Defines and starts the boot-sector guest (16 MiB, raw image on shared storage) under
    /// `domainType`; waits for its first tick.
    package func bootBootSector(on host: Testbed.Name, domainType: String) async throws {
        let image = "\(Testbed.shared)/\(name).img"
        try FileManager.default.copyItem(
            at: Integration.fixtures.appendingPathComponent("bootsector.img"), to: URL(fileURLWithPath: image))
        let xml = try Integration.fill(
            "bootsector-domain.xml.in", ["@NAME@": name, "@DISK@": image, "@SERIAL@": serialPath, "@DOMAIN_TYPE@": domainType])
        let connection = try Testbed.connection(host)
        defer { try? connection.close() }
        try connection.defineDomain(xml: xml).start()
        let ticking = await Integration.waitFor(30) { self.log.lines().contains { $0.hasPrefix("tick") } }
        try #require(ticking, "boot-sector guest \(name) did not tick on \(host)")
    }

    /// The hosts on which the guest is defined or running.
    package func hosts() throws -> [Testbed.Name] {
        try Testbed.Name.allCases.filter { try Testbed.domains(on: $0, prefix: name).contains(name) }
    }

    /// The guest's state on a host, or nil where it has no such domain.
    package func state(on host: Testbed.Name, name: String? = nil) throws -> Domain.State? {
        let connection = try Testbed.connection(host)
        defer { try? connection.close() }
        return try? connection.lookupDomain(name: name ?? self.name).state().state
    }

    /// The markers file read from the disk image on the host, not through the guest.
    package func markersOnDisk(_ path: String) throws -> [String] { try Integration.markers(inImage: path) }

    /// The definition a host keeps for the guest (inactive: the persistent one).
    package func definition(on host: Testbed.Name, name: String? = nil, inactive: Bool = false) throws -> String {
        let connection = try Testbed.connection(host)
        defer { try? connection.close() }
        return try connection.lookupDomain(name: name ?? self.name).xmlDescription(inactive ? [.inactive] : [])
    }

    /// Heartbeats keep coming after `count`: the guest runs (and did not restart, since
    /// `heartbeats()` counts from the last boot).
    package func keepsBeating(after count: Int, seconds: Double = 20) async -> Bool {
        await Integration.waitFor(seconds) { self.log.heartbeats().count > count + 1 }
    }

    package func cleanUp() {
        for host in Testbed.Name.allCases {
            Integration.removeDomains(named: name, on: host.uri)
        }
        for folder in [Testbed.shared] + Testbed.Name.allCases.map(\.imagesFromHere) {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where file.hasPrefix(name) {
                try? FileManager.default.removeItem(atPath: "\(folder)/\(file)")
            }
        }
        // The pools forget the removed files.
        for host in Testbed.Name.allCases {
            guard let connection = try? Testbed.connection(host) else { continue }
            for pool in (try? connection.listAllStoragePools()) ?? [] { try? pool.refresh() }
            try? connection.close()
        }
    }
}

extension Testbed.Name {
    /// A raw copy of `image` (a path on this host, its backing chain at the host's own paths),
    /// flattened inside the host's mount namespace (where those paths exist) by `qemu-img
    /// convert`; returned as a path from here. The caller removes it.
    package func flattenedCopy(of image: String) throws -> String {
        let pid = try run("bash", [packageRoot.appendingPathComponent("scripts/testbed.sh").path, "daemon-pid", rawValue])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let name = ".vmdriver-flat-\(UUID().uuidString.prefix(8).lowercased()).raw"
        _ = try run(
            "nsenter",
            ["-t", pid, "-m", "--", "qemu-img", "convert", "-U", "-O", "raw", image, "/var/lib/libvirt/images/\(name)"])
        return "\(imagesFromHere)/\(name)"
    }
}

/// Bytes a file takes on disk.
package func allocated(_ path: String) throws -> Int {
    try URL(fileURLWithPath: path).resourceValues(forKeys: [.totalFileAllocatedSizeKey]).totalFileAllocatedSize ?? 0
}

/// The backing file a qcow2 image names, read from the image.
package func backingFile(of path: String) throws -> String? {
    let info = try run("qemu-img", ["info", "-U", "--output=json", path])
    let object = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any]
    return object?["backing-filename"] as? String
}

extension Testbed {
    /// Migration options between the testbed's hosts: the testbed's client certificate for TLS
    /// (security normal and high), then whatever `configure` sets.
    package static func migrationOptions(_ configure: (inout MigrationOptions) -> Void = { _ in }) -> MigrationOptions {
        var options = MigrationOptions()
        options.clientPKIPath = clientPKI
        configure(&options)
        return options
    }
}
