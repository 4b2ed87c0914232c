import Foundation
import Libvirt

/// Remembers pairs of images on two hosts that VMDriver compared byte for byte and found equal,
/// so an incremental migration over the same base does not read both bases again (a 1 GiB base
/// costs two 1 GiB downloads). A pair is known by each host's UUID and each volume's path,
/// sizes and change times as libvirt reports them: writing to either image, replacing it or
/// changing its mode changes its ctime, and the pair is compared again. Only equality is
/// remembered. Kept in /var/cache/vmdriver when writable, else ~/.cache/vmdriver.
enum IdenticalImages {
    struct Entry: Codable {
        var key: String
        var written: Date
    }

    /// What identifies one image's content for this purpose, or nil when libvirt does not
    /// report its change times (then nothing is remembered).
    static func fingerprint(of volume: StorageVolume, host: String) -> String? {
        guard let xml = try? volume.xmlDescription(), let root = try? XMLTree.parse(xml),
            let target = root.child("target"), let path = target.child("path")?.trimmedText,
            let times = target.child("timestamps"), let ctime = times.child("ctime")?.trimmedText,
            let mtime = times.child("mtime")?.trimmedText
        else { return nil }
        let sizes = ["capacity", "allocation", "physical"].map { root.child($0)?.trimmedText ?? "-" }
        return ([host, path] + sizes + [mtime, ctime]).joined(separator: "|")
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
