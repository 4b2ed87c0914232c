import Foundation

/// Answers VMDriver keeps between runs (accelerator probes, image digests), as a small JSON
/// list of keyed entries: in /var/cache/vmdriver when writable, else ~/.cache/vmdriver
/// (`$VMDRIVER_CACHE_DIR` instead of both, for tests). Blocking file I/O.
struct CacheFile<Value: Codable> {
    struct Entry: Codable {
        var key: String
        var written: Date
        var value: Value
    }

    /// The file's name in the cache folder.
    let name: String
    /// How many entries it keeps, the newest.
    let keep: Int
    /// How long an entry answers.
    let maximumAge: TimeInterval

    var url: URL {
        if let override = ProcessInfo.processInfo.environment["VMDRIVER_CACHE_DIR"] {
            return URL(fileURLWithPath: override).appendingPathComponent(name)
        }
        let system = URL(fileURLWithPath: "/var/cache/vmdriver")
        if FileManager.default.isWritableFile(atPath: system.path)
            || (try? FileManager.default.createDirectory(at: system, withIntermediateDirectories: true)) != nil
        {
            return system.appendingPathComponent(name)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/vmdriver/\(name)")
    }

    /// The value stored for `key`, if it is not older than `maximumAge`.
    func value(for key: String) -> Value? {
        guard let entry = entries(in: url).first(where: { $0.key == key }),
            Date().timeIntervalSince(entry.written) < maximumAge
        else { return nil }
        return entry.value
    }

    /// Stores `value` for `key`, replacing what was stored for it.
    func store(_ value: Value, for key: String) { store([(key, value)]) }

    /// Stores each value for its key, replacing what was stored for them, in one write.
    func store(_ values: [(key: String, value: Value)]) {
        let url = self.url
        let keys = Set(values.map(\.key))
        let now = Date()
        let kept = entries(in: url).filter { !keys.contains($0.key) }.suffix(max(0, keep - values.count))
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(Array(kept) + values.map { Entry(key: $0.key, written: now, value: $0.value) }) {
            try? data.write(to: url, options: .atomic)
        }
    }

    private func entries(in url: URL) -> [Entry] {
        (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode([Entry].self, from: $0) } ?? []
    }
}
