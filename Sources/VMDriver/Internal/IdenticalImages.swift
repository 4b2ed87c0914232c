import Foundation
import Libvirt

/// Remembers pairs of images on two hosts that VMDriver compared byte for byte and found equal,
/// so an incremental migration over the same base does not read both bases again (a 1 GiB base
/// costs two 1 GiB downloads). A pair is known by each host's UUID and each volume's path,
/// virtual and file sizes and modification time (to the nanosecond) as libvirt reports them:
/// writing to either image or copying another file over it changes its mtime, and the pair is
/// compared again. Not the change time or the allocation: libvirt's DAC driver changes the
/// owner of a base (and stores the old one in extended attributes, which can take a block)
/// every time a QEMU opens or closes it, so those move with every migration while the bytes
/// stay. Only equality is remembered. Kept in /var/cache/vmdriver when writable, else
/// ~/.cache/vmdriver.
enum IdenticalImages {
    struct Entry: Codable {
        var key: String
        var written: Date
    }

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

    static func known(_ a: String, _ b: String) -> Bool {
        let key = key(a, b)
        return load().contains { $0.key == key && Date().timeIntervalSince($0.written) < 30 * 24 * 3600 }
    }

    static func remember(_ a: String, _ b: String) {
        let key = key(a, b)
        let entries = load().filter { $0.key != key }.suffix(255) + [Entry(key: key, written: Date())]
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(Array(entries)) { try? data.write(to: file, options: .atomic) }
    }

    private static func load() -> [Entry] {
        (try? Data(contentsOf: file)).flatMap { try? JSONDecoder().decode([Entry].self, from: $0) } ?? []
    }

    static var file: URL {
        if let override = ProcessInfo.processInfo.environment["VMDRIVER_CACHE_DIR"] {
            return URL(fileURLWithPath: override).appendingPathComponent("identical-images.json")
        }
        let system = URL(fileURLWithPath: "/var/cache/vmdriver")
        if FileManager.default.isWritableFile(atPath: system.path)
            || (try? FileManager.default.createDirectory(at: system, withIntermediateDirectories: true)) != nil
        {
            return system.appendingPathComponent("identical-images.json")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/vmdriver/identical-images.json")
    }
}
