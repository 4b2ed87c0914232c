import Foundation
internal import Libvirt

/// Remembers pairs of images on two hosts that VMDriver compared byte for byte and found equal,
/// so an incremental migration over the same base does not read both bases again (a 1 GiB base
/// costs two 1 GiB downloads). A pair is known by each host's UUID and each volume's path,
/// virtual and file sizes and modification time (to the nanosecond) as libvirt reports them:
/// writing to either image or copying another file over it changes its mtime, and the pair is
/// compared again. Not the change time or the allocation: libvirt's DAC driver changes the
/// owner of a base (and stores the old one in extended attributes, which can take a block)
/// every time a QEMU opens or closes it, so those move with every migration while the bytes
/// stay. Only equality is remembered. Kept in /var/cache/vmdriver when writable, else
/// ~/.cache/vmdriver (`CacheFile`).
enum IdenticalImages {
    private static let cache = CacheFile<Bool>(name: "identical-images.json", keep: 256, maximumAge: 30 * 24 * 3600)

    /// What identifies one image's content for this purpose, or nil when libvirt does not
    /// report its modification time to the nanosecond (then nothing is remembered).
    static func fingerprint(of volume: StorageVolume, host: String) -> String? {
        guard let xml = try? volume.xmlDescription(), let root = try? XMLTree.parse(xml),
            let target = root.child("target"), let path = target.child("path")?.trimmedText,
            let mtime = target.child("timestamps")?.child("mtime")?.trimmedText, mtime.contains(".")
        else { return nil }
        let sizes = ["capacity", "physical"].map { root.child($0)?.trimmedText ?? "-" }
        return ([host, path] + sizes + [mtime]).joined(separator: "|")
    }

    static func key(_ a: String, _ b: String) -> String { a < b ? "\(a)\n\(b)" : "\(b)\n\(a)" }

    static func known(_ a: String, _ b: String) -> Bool { cache.value(for: key(a, b)) == true }

    static func remember(_ a: String, _ b: String) { cache.store(true, for: key(a, b)) }
}
