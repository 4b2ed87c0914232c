import Foundation
internal import Libvirt

/// A VM's disks as cloning and deleting see them: which images are its own (to copy or to
/// freeze) and what each rests on, read from the images.
struct DiskLayout: Sendable {
    struct Disk: Sendable {
        /// Guest device name (vda), libvirt's key for snapshots and block jobs.
        var target: String
        /// The active image.
        var path: String
        /// Its format as read from the image.
        var format: String
        /// Backing images below it, nearest first.
        var chain: [VMDetails.BackingImage]
    }

    /// Writable file-backed disks: the ones a clone gets its own copy of.
    var disks: [Disk]
    /// Read-only disks and CD-ROMs, which clones share.
    var shared: [String]
    /// The NVRAM file, if the VM has one.
    var nvram: String?

    /// Reads the layout from a domain's definition (the running one's when `active`, asked of
    /// libvirt when not given). Blocking.
    static func read(domain: Domain, host: Host, label: String, active: Bool? = nil) throws -> DiskLayout {
        let flags: Domain.XMLFlags = try active ?? domain.isActive() ? [] : [.inactive]
        let root: XMLTree
        do {
            root = try XMLTree.parse(try domain.xmlDescription(flags))
        } catch let error as XMLTree.ParseError {
            throw VMDriverError(.failed, "cannot read the definition of \(label): \(error)")
        }
        var disks: [Disk] = []
        var shared: [String] = []
        for disk in root.child("devices")?.children("disk") ?? [] {
            let device = disk.attributes["device"] ?? "disk"
            let type = disk.attributes["type"] ?? "file"
            let source = disk.child("source")
            let path = source?.attributes["file"] ?? source?.attributes["dev"]
            let readOnly = disk.child("readonly") != nil || device == "cdrom" || device == "floppy"
            if readOnly {
                if let path { shared.append(path) }
                continue
            }
            guard type == "file", let path else {
                throw VMDriverError(
                    .notSupported,
                    "\(label) has a \(type) disk (\(disk.child("target")?.attributes["dev"] ?? "?")): VMDriver clones file-backed disks only"
                )
            }
            let image = host.storage.inspect(path)
            guard let chain = image.chain else {
                throw VMDriverError(
                    host.storage.unreadableImageCode,
                    "cannot read disk image \(path) of \(label): \(image.note ?? "unknown error")")
            }
            disks.append(
                Disk(
                    target: disk.child("target")?.attributes["dev"] ?? "", path: path,
                    format: image.format ?? disk.child("driver")?.attributes["type"] ?? "raw", chain: chain))
        }
        return DiskLayout(disks: disks, shared: shared, nvram: root.child("os")?.child("nvram")?.trimmedText)
    }
}

/// Disk-image operations on the machine VMDriver runs on (`qemu-img`), for `LocalStorage`.
enum LocalImages {
    static func qemuImg() throws(VMDriverError) -> String {
        guard let path = Subprocess.which("qemu-img") else {
            throw VMDriverError(.notSupported, "qemu-img is not installed (apt-get install qemu-utils)")
        }
        return path
    }

    /// Runs qemu-img with `arguments`; a failure says what VMDriver was doing (`doing`).
    private static func runQemuImg(_ arguments: [String], doing: String) throws(VMDriverError) {
        let tool = try qemuImg()
        let output: Subprocess.Output
        do {
            output = try Subprocess.run(tool, arguments)
        } catch {
            throw VMDriverError(.failed, "cannot run qemu-img: \(error)", cause: error)
        }
        guard output.status == 0 else {
            throw VMDriverError(.failed, "\(doing): \(output.stderr)")
        }
    }

    /// Creates `path` empty with mode 0600, failing if it exists, for a tool to write an image
    /// into: qemu-img and cp would create it 0644 (world-readable guest data) and overwrite an
    /// existing file without a word. Both keep an existing file's mode. libvirt's
    /// dynamic_ownership gives the image to the qemu user when the VM starts.
    static func reserve(_ path: String) throws(VMDriverError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let error = errno
            throw VMDriverError(
                error == EEXIST ? .invalidParameter : .failed,
                "cannot create \(path): \(String(cString: strerror(error)))\(error == EEXIST ? " (nothing was overwritten)" : "")"
            )
        }
        close(descriptor)
    }

    /// Creates a qcow2 overlay of `base` in `overlay` (reserve it first: qemu-img overwrites):
    /// written by VMDriver itself where the base is one its header reader sizes, else by qemu-img.
    static func createOverlay(_ overlay: String, base: String, baseFormat: String) throws(VMDriverError) {
        if try QCow2Header.writeOverlay(at: overlay, base: base, baseFormat: baseFormat) { return }
        try runQemuImg(
            ["create", "-q", "-f", "qcow2", "-F", baseFormat, "-b", base, "--", overlay],
            doing: "cannot create overlay \(overlay) on \(base)")
    }

    /// Whether a qcow2 overlay holds no data of its own (nobody wrote to it yet): from its L1
    /// table where the header reader understands the image, else from `qemu-img map`.
    static func overlayIsEmpty(_ path: String) -> Bool {
        if let empty = QCow2Header.mapsNothing(path: path) { return empty }
        guard let tool = try? qemuImg(),
            let output = try? Subprocess.run(tool, ["map", "-U", "--output=json", "--", path]), output.status == 0,
            let extents = try? JSONSerialization.jsonObject(with: output.stdout) as? [[String: Any]]
        else { return false }
        // depth 0 is the top image itself: any data there was written to the overlay.
        return !extents.contains { ($0["depth"] as? Int) == 0 && ($0["data"] as? Bool) == true }
    }

    /// Makes an overlay standalone by copying its backing data into it (`qemu-img rebase -b ""`).
    static func flattenInPlace(_ path: String, format: String) throws(VMDriverError) {
        try runQemuImg(["rebase", "-q", "-f", format, "-b", "", "--", path], doing: "cannot make \(path) standalone")
    }
}
