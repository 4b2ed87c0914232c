import Foundation
import Libvirt

/// Finds out which accelerators actually run guests on a host, by booting a 512-byte probe
/// guest (`Fixtures/bootsector/probe.S`, embedded as `ProbeImage.bytes`) under each one.
///
/// Why boot rather than trust libvirt: on some hosts /dev/kvm exists and libvirt offers
/// `<domain type='kvm'>`, yet only real-mode code runs under it and a Linux kernel hangs as soon
/// as it leaves real mode. The probe walks real mode → protected mode → long mode and reports each
/// step on its serial port; a Linux guest needs every step.
actor AcceleratorProbe {
    static let shared = AcceleratorProbe()

    private var cache: [String: [Capabilities.Accelerator]] = [:]

    /// The accelerators of `host`, probed once per host URI and process.
    func results(for host: Host, offered: Set<String>) async -> [Capabilities.Accelerator] {
        if let cached = cache[host.uri] { return cached }
        var results: [Capabilities.Accelerator] = []
        for (name, type) in [("kvm", "kvm"), ("tcg", "qemu")] {
            results.append(await probe(name: name, type: type, host: host, offered: offered.contains(type)))
        }
        cache[host.uri] = results
        return results
    }

    private func probe(name: String, type: String, host: Host, offered: Bool) async -> Capabilities.Accelerator {
        var result = Capabilities.Accelerator(
            name: name, domainType: type, offered: offered,
            runsGuests: .unavailable("libvirt does not offer domain type '\(type)' on this host"),
            runsLinuxGuests: .unavailable("libvirt does not offer domain type '\(type)' on this host"))
        guard offered else { return result }
        guard !host.isRemote else {
            result.runsGuests = .unknown("offered by libvirt; the boot probe runs only on a local host")
            result.runsLinuxGuests = .unknown("offered by libvirt; the boot probe runs only on a local host")
            return result
        }
        let outcome: ProbeOutcome
        do {
            outcome = try await host.blocking("probing \(name) on \(host.label)") { connection in
                try Self.boot(type: type, connection: connection)
            }
        } catch {
            result.runsGuests = .unavailable("the probe guest did not start: \(error.message)")
            result.runsLinuxGuests = .unavailable("the probe guest did not start")
            return result
        }
        let seconds = String(format: "%.1f s", outcome.seconds)
        result.runsGuests = outcome.lines.contains("VMDRIVER-PROBE-START")
            ? .available("the probe guest ran real-mode code")
            : .unavailable("the probe guest printed nothing within \(seconds)")
        if outcome.lines.contains("VMDRIVER-LONGMODE-OK") {
            result.runsLinuxGuests = .available("the probe guest reached 64-bit long mode")
        } else {
            let reached = outcome.lines.contains("VMDRIVER-PROTECTED-OK")
                ? "protected mode but not long mode" : outcome.lines.contains("VMDRIVER-PROBE-START")
                ? "real mode only" : "nothing"
            result.runsLinuxGuests = .unavailable(
                "the probe guest reached \(reached) within \(seconds): a Linux guest would hang here; use domain type 'qemu' (TCG)")
        }
        return result
    }

    struct ProbeOutcome: Sendable {
        var lines: Set<String>
        var seconds: Double
    }

    /// Boots the probe as a transient, auto-destroyed guest and reads its serial log until it
    /// reports long mode or the deadline passes. Blocking: runs on the pool.
    private static func boot(type: String, connection: Connection) throws -> ProbeOutcome {
        let fileManager = FileManager.default
        let directory = fileManager.temporaryDirectory.appendingPathComponent("vmdriver-probe-\(UUID().uuidString.prefix(8))")
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? fileManager.removeItem(at: directory) }
        let image = directory.appendingPathComponent("probe.img")
        var bytes = ProbeImage.bytes
        bytes += [UInt8](repeating: 0, count: 64 * 1024 - bytes.count)
        try Data(bytes).write(to: image)
        let serial = directory.appendingPathComponent("serial.log")
        let name = "vmdriver-probe-\(type)-\(UUID().uuidString.prefix(8).lowercased())"
        let xml = """
            <domain type='\(type)'>
              <name>\(name)</name>
              <memory unit='MiB'>16</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
              <on_poweroff>destroy</on_poweroff>
              <devices>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='raw'/>
                  <source file='\(image.path)'/>
                  <target dev='hda' bus='ide'/>
                </disk>
                <serial type='file'><source path='\(serial.path)'/></serial>
                <memballoon model='none'/>
              </devices>
            </domain>
            """
        // AUTODESTROY: if this process dies mid-probe, libvirt removes the guest when the
        // connection closes.
        let domain = try connection.createDomain(xml: xml, flags: [.autoDestroy])
        defer { try? domain.destroy() }
        // The clock starts once QEMU runs: starting it can take seconds on a busy host, while the
        // probe itself needs milliseconds (TCG included).
        let started = Date()
        var lines: Set<String> = []
        let deadline = started.addingTimeInterval(5)
        while Date() < deadline {
            if let data = fileManager.contents(atPath: serial.path) {
                lines = Set(
                    String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
                        .map { $0.trimmingCharacters(in: .whitespaces) })
                if lines.contains("VMDRIVER-LONGMODE-OK") { break }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return ProbeOutcome(lines: lines, seconds: Date().timeIntervalSince(started))
    }
}
