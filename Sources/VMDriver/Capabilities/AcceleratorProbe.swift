import Foundation
internal import Libvirt

/// Finds out which accelerators actually run guests on a host, by booting a 512-byte probe
/// guest (`Fixtures/bootsector/probe.S`, embedded as `ProbeImage.bytes`) under each one.
///
/// Why boot rather than trust libvirt: on some hosts /dev/kvm exists and libvirt offers
/// `<domain type='kvm'>`, yet only real-mode code runs under it and a Linux kernel hangs as soon
/// in its first minutes. The probe walks real mode → long mode → `lock cmpxchg16b` → a fixed
/// workload and reports each step on its serial port; a Linux guest needs every step, at speed.
actor AcceleratorProbe {
    static let shared = AcceleratorProbe()

    private var cache: [String: [Capabilities.Accelerator]] = [:]

    /// The accelerators of `host`. Probing takes seconds (a BIOS boot under each accelerator), so
    /// results are kept per process and, for a local host, on disk for a day, keyed by everything
    /// that could change the answer: QEMU and libvirt versions, the kernel, /dev/kvm, the probe.
    func results(
        for host: Host, offered: Set<String>, versions: String, refresh: Bool
    ) async -> [Capabilities.Accelerator] {
        let key = [host.uri, host.name, versions, offered.sorted().joined(separator: ","), Self.localFingerprint()]
            .joined(separator: "|")
        if !refresh {
            if let cached = cache[key] { return cached }
            if !host.isRemote, let stored = Self.diskCache.value(for: key) {
                cache[key] = stored
                return stored
            }
        }
        var results: [Capabilities.Accelerator] = []
        for (name, type) in [("kvm", "kvm"), ("tcg", "qemu")] {
            results.append(await probe(name: name, type: type, host: host, offered: offered.contains(type)))
        }
        cache[key] = results
        if !host.isRemote { Self.diskCache.store(results, for: key) }
        return results
    }

    /// The kernel release, /dev/kvm's identity and mode, and the probe's own bytes.
    private static func localFingerprint() -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var kvm = stat()
        let kvmState = stat("/dev/kvm", &kvm) == 0 ? "\(kvm.st_mode)-\(kvm.st_uid)-\(kvm.st_gid)-\(kvm.st_rdev)" : "none"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in ProbeImage.bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(release)|\(kvmState)|\(String(hash, radix: 16))"
    }

    /// Probe results on disk, a day each.
    private static let diskCache = CacheFile<[Capabilities.Accelerator]>(
        name: "accelerators.json", keep: 16, maximumAge: 24 * 3600)

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
            outcome = try await host.blocking("probing \(name) on \(host.label)", lane: .long) { connection in
                try Self.boot(type: type, connection: connection)
            }
        } catch {
            result.runsGuests = .unavailable("the probe guest did not start: \(error.message)")
            result.runsLinuxGuests = .unavailable("the probe guest did not start")
            return result
        }
        result.runsGuests =
            outcome.firstSeen["VMDRIVER-PROBE-START"] != nil
            ? .available("the probe guest ran real-mode code")
            : .unavailable("the probe guest printed nothing within \(Self.format(outcome.seconds))")
        result.runsLinuxGuests = Self.linuxVerdict(outcome)
        return result
    }

    /// A Linux guest needs long mode, `lock cmpxchg16b` (the kernel's allocator uses it) and
    /// ordinary speed: the probe's fixed workload takes milliseconds under TCG. Some /dev/kvm
    /// implementations emulate every instruction in software (hundreds of times slower than
    /// TCG) and fail on cmpxchg16b: Linux boots for minutes there, then stops.
    static func linuxVerdict(_ outcome: ProbeOutcome) -> Capabilities.Support {
        let steps = ["VMDRIVER-PROBE-START", "VMDRIVER-LONGMODE-OK", "VMDRIVER-CMPXCHG16B-OK", "VMDRIVER-PROBE-DONE"]
        let reached = steps.last { outcome.firstSeen[$0] != nil }
        let advice = "; Linux guests need domain type 'qemu' (TCG) here"
        if let longMode = outcome.firstSeen["VMDRIVER-LONGMODE-OK"], let done = outcome.firstSeen["VMDRIVER-PROBE-DONE"] {
            let workload = done - longMode
            guard workload < 1 else {
                return .unavailable(
                    "the probe's fixed workload took \(Self.format(workload)) in long mode (milliseconds under TCG): "
                        + "this accelerator emulates instructions in software" + advice)
            }
            return .available(
                "the probe guest reached long mode, ran lock cmpxchg16b and its workload in \(Self.format(workload))")
        }
        let last = reached.map { "after \($0)" } ?? "before printing anything"
        if outcome.pausedByError {
            return .unavailable("the probe guest stopped with an emulation error \(last)" + advice)
        }
        return .unavailable("the probe guest stalled \(last) for \(Self.format(outcome.seconds))" + advice)
    }

    static func format(_ seconds: Double) -> String { String(format: "%.2f s", seconds) }

    struct ProbeOutcome: Sendable {
        /// Each probe line, with the time (seconds after QEMU started) it was first seen.
        var firstSeen: [String: Double]
        var seconds: Double
        /// QEMU stopped the vCPU on an error it could not handle (KVM emulation failure).
        var pausedByError: Bool
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
        var firstSeen: [String: Double] = [:]
        var paused = false
        let deadline = started.addingTimeInterval(8)
        while Date() < deadline {
            let now = Date().timeIntervalSince(started)
            if let data = fileManager.contents(atPath: serial.path) {
                for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
                    let text = line.trimmingCharacters(in: .whitespaces)
                    if text.hasPrefix("VMDRIVER-"), firstSeen[text] == nil { firstSeen[text] = now }
                }
                if firstSeen["VMDRIVER-PROBE-DONE"] != nil { break }
            }
            if (try? domain.state().state) == .paused {
                paused = true
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return ProbeOutcome(firstSeen: firstSeen, seconds: Date().timeIntervalSince(started), pausedByError: paused)
    }
}
