import Foundation
internal import Libvirt

/// What VMDriver knows of images' contents, as a digest per image: equal digests, equal bytes.
/// A base it copies to another host gets the SHA-256 (`ContentDigest`) of the bytes that went
/// over, recorded for the original and the copy. Two images it compares byte for byte and finds
/// equal get the digest one of them already had, or a new identity (`newIdentity`) when neither
/// had one: comparing hashes nothing (it would slow the first compare), and equality still
/// spreads, so a third host's copy compared with either is known with both. An incremental
/// migration over two images whose digests are recorded and equal reads neither: the first move
/// over a base VMDriver placed compares nothing, and neither does the second over one it
/// compared. A base copied by hand is compared byte for byte, once.
///
/// A digest holds for an image while its fingerprint holds: its host's UUID, its path, its
/// virtual and file sizes and its modification time (to the nanosecond) as libvirt reports them.
/// Writing to an image or copying another file over it moves its modification time, and it is
/// read again. Not the change time or the allocation: libvirt's DAC driver changes the owner of
/// a base (and stores the old one in extended attributes, which can take a block) every time a
/// QEMU opens or closes it, so those move with every migration while the bytes stay. Kept by the
/// machine VMDriver runs on, in /var/cache/vmdriver when writable, else ~/.cache/vmdriver
/// (`CacheFile`): nothing is written on the hosts; another machine driving them compares again.
enum ImageDigests {
    private static let cache = CacheFile<String>(name: "image-digests.json", keep: 512, maximumAge: 30 * 24 * 3600)

    /// What identifies one image's content for this purpose, or nil when libvirt does not
    /// report its modification time to the nanosecond (then nothing is recorded).
    static func fingerprint(of volume: StorageVolume, host: String) -> String? {
        guard let xml = try? volume.xmlDescription(), let root = try? XMLTree.parse(xml),
            let target = root.child("target"), let path = target.child("path")?.trimmedText,
            let mtime = target.child("timestamps")?.child("mtime")?.trimmedText, mtime.contains(".")
        else { return nil }
        let sizes = ["capacity", "physical"].map { root.child($0)?.trimmedText ?? "-" }
        return ([host, path] + sizes + [mtime]).joined(separator: "|")
    }

    /// The digest recorded for an image with this fingerprint.
    static func digest(_ fingerprint: String) -> String? { cache.value(for: fingerprint) }

    /// A digest for images found equal when none of them had one: equal to no other.
    static func newIdentity() -> String { "same-as-\(UUID().uuidString.lowercased())" }

    /// Records the digest of the images with these fingerprints.
    static func record(_ digest: String, for fingerprints: [String]) {
        cache.store(fingerprints.map { ($0, digest) })
    }
}
