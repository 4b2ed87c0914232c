import Foundation

/// virt-sysprep (libguestfs) on a clone's disks before it is registered: a new machine-id, no
/// SSH host keys (the guest makes new ones at boot), the hostname given, no DHCP leases or
/// udev's remembered MACs. libguestfs boots a small appliance VM of its own to edit the disks,
/// so it needs a kernel of this machine's (in /boot, or `SUPERMIN_KERNEL`), and it works on
/// this machine's files only.
enum Sysprep {
    /// What virt-sysprep resets: the clone's identity, never its users' data.
    static let operations = [
        "machine-id", "ssh-hostkeys", "net-hwaddr", "dhcp-client-state", "dhcp-server-state", "udev-persistent-net",
        "random-seed", "customize",
    ]

    /// Whether virt-sysprep works for clones on `host`, and why not.
    static func support(on host: Host) -> Capabilities.Support {
        if host.isRemote {
            return .unavailable(
                "virt-sysprep edits disk images on this machine and \(host.label) is another machine: clone there with --hostname (cloud-init) instead"
            )
        }
        guard let tool = Subprocess.which("virt-sysprep") else {
            return .unavailable("virt-sysprep is not installed (apt-get install guestfs-tools)")
        }
        let environment = ProcessInfo.processInfo.environment
        if let kernel = environment["SUPERMIN_KERNEL"] {
            return .when(
                FileManager.default.isReadableFile(atPath: kernel), "\(tool), appliance kernel \(kernel)",
                else: "SUPERMIN_KERNEL names \(kernel), which cannot be read")
        }
        let kernels = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? [])
            .filter { $0.hasPrefix("vmlinuz-") }.sorted()
        guard let kernel = kernels.last(where: { FileManager.default.isReadableFile(atPath: "/boot/\($0)") }) else {
            return .unavailable(
                "libguestfs boots an appliance with a kernel of this machine's and /boot has none (install a linux-image package, or set SUPERMIN_KERNEL and SUPERMIN_MODULES)"
            )
        }
        return .available("\(tool), appliance kernel /boot/\(kernel)")
    }

    /// Runs virt-sysprep on `disks` (this machine's files). Blocking; `handle` stops it.
    static func run(disks: [(path: String, format: String)], hostname: String?, handle: Subprocess.Handle)
        throws(VMDriverError)
    {
        guard let tool = Subprocess.which("virt-sysprep") else {
            throw VMDriverError(.notSupported, "virt-sysprep is not installed (apt-get install guestfs-tools)")
        }
        var arguments = ["--quiet", "--operations", operations.joined(separator: ",")]
        for disk in disks { arguments += ["--format", disk.format, "-a", disk.path] }
        if let hostname { arguments += ["--hostname", hostname] }
        let output: Subprocess.Output
        do {
            output = try Subprocess.run(tool, arguments, handle: handle)
        } catch {
            throw VMDriverError(.failed, "cannot run \(tool): \(error)")
        }
        guard output.status == 0 else {
            throw VMDriverError(.failed, "virt-sysprep failed (exit \(output.status)): \(output.stderr.suffix(600))")
        }
    }
}
