import Foundation

/// A VMware configuration file (`.vmx`) as VMware writes it: one `key = "value"` per line,
/// keys case-insensitive, `#` comments, `|XX` hex escapes inside values, and a `.encoding`
/// entry naming the file's character set.
///
/// It only reads: what the keys mean on KVM is `VMXMachine`'s business. Every key read through
/// it is remembered, so the keys nobody used can be reported.
struct VMXFile {
    struct Entry: Equatable {
        /// The key as written (`displayName`), for messages.
        let key: String
        let value: String
        let line: Int
    }

    /// Every entry, in file order. A key written twice keeps its last value (as VMware does).
    let entries: [Entry]
    private let byKey: [String: Int]
    private var used = Set<String>()

    /// The largest `.vmx` read: VMware's are a few kilobytes.
    static let maximumSize = 1 << 20

    /// Parses the file's bytes. `origin` names the file in errors.
    /// - Throws: code 4 for a line that is not `key = value`, an unterminated quote, a bad
    ///   escape or an unknown `.encoding`.
    init(parsing data: Data, origin: String) throws(VMDriverError) {
        let text = try Self.decode(data, origin: origin)
        var entries: [Entry] = []
        var byKey: [String: Int] = [:]
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw VMDriverError(
                    .invalidParameter, "\(origin), line \(number): expected key = \"value\", found '\(line.prefix(60))'")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.unicodeScalars.allSatisfy({ Self.keyCharacters.contains($0) }) else {
                throw VMDriverError(.invalidParameter, "\(origin), line \(number): '\(key.prefix(60))' is not a VMX key")
            }
            let value = try Self.value(line[line.index(after: equals)...], origin: origin, line: number)
            byKey[key.lowercased()] = entries.count
            entries.append(Entry(key: key, value: value, line: number))
        }
        self.entries = entries
        self.byKey = byKey
        used.insert(".encoding")
    }

    /// The value of `key` (any case), marking it used.
    subscript(key: String) -> String? {
        mutating get {
            let lowered = key.lowercased()
            guard let index = byKey[lowered] else { return nil }
            used.insert(lowered)
            return entries[index].value
        }
    }

    /// `TRUE`/`FALSE` as VMware writes them (any case, also `1`/`0`, `yes`/`no`).
    mutating func bool(_ key: String) -> Bool? {
        switch self[key]?.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off": false
        default: nil
        }
    }

    /// Marks every key starting with `prefix` (any case) used, without reading it.
    mutating func ignore(prefix: String) {
        let lowered = prefix.lowercased()
        for key in byKey.keys where key.hasPrefix(lowered) { used.insert(key) }
    }

    /// The keys starting with `prefix` (lowercased), e.g. every `ide0:0.` key.
    func keys(withPrefix prefix: String) -> [String] {
        let lowered = prefix.lowercased()
        return byKey.keys.filter { $0.hasPrefix(lowered) }.sorted()
    }

    /// The keys no one read, as written in the file, in file order.
    var unusedKeys: [String] {
        entries.enumerated().filter { index, entry in
            byKey[entry.key.lowercased()] == index && !used.contains(entry.key.lowercased())
        }.map(\.element.key)
    }

    private static let keyCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._:-[]"))

    /// A value: quoted (with `|XX` escapes) or bare up to a comment.
    private static func value(_ rest: Substring, origin: String, line: Int) throws(VMDriverError) -> String {
        let rest = rest.trimmingCharacters(in: .whitespaces)
        guard rest.hasPrefix("\"") else {
            // Bare values (old files): up to a comment.
            return (rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                .trimmingCharacters(in: .whitespaces)
        }
        var scalars = String.UnicodeScalarView()
        var iterator = rest.unicodeScalars.dropFirst().makeIterator()
        while let scalar = iterator.next() {
            switch scalar {
            case "\"":
                return String(scalars)
            case "|":
                guard let high = iterator.next(), let low = iterator.next(),
                    let byte = UInt8(String([Character(high), Character(low)]), radix: 16)
                else {
                    throw VMDriverError(.invalidParameter, "\(origin), line \(line): '|' must be followed by two hex digits")
                }
                scalars.append(Unicode.Scalar(byte))
            default:
                scalars.append(scalar)
            }
        }
        throw VMDriverError(.invalidParameter, "\(origin), line \(line): the value's closing quote is missing")
    }

    /// The text in the character set `.encoding` names (UTF-8 when it names none). The entry is
    /// found by reading the bytes as Latin-1, which every VMX encoding agrees with for ASCII.
    private static func decode(_ data: Data, origin: String) throws(VMDriverError) -> String {
        let probe = String(data.map { Character(Unicode.Scalar($0)) })
        var name = "utf-8"
        for line in probe.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.lowercased().hasPrefix(".encoding") else { continue }
            if let equals = trimmed.firstIndex(of: "=") {
                name = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t\""))
                    .lowercased()
            }
        }
        let encoding: String.Encoding? =
            switch name {
            case "utf-8", "utf8": .utf8
            case "windows-1252", "cp1252": .windowsCP1252
            case "iso-8859-1", "latin1", "iso8859-1": .isoLatin1
            case "us-ascii", "ascii": .ascii
            case "shift_jis", "shift-jis", "sjis": .shiftJIS
            case "euc-jp": .japaneseEUC
            default: nil
            }
        guard let encoding else {
            throw VMDriverError(
                .invalidParameter,
                "\(origin): .encoding '\(name)' is not one VMDriver reads (UTF-8, windows-1252, ISO-8859-1, Shift_JIS, EUC-JP)")
        }
        guard let text = String(data: data, encoding: encoding) else {
            throw VMDriverError(.invalidParameter, "\(origin): the file is not valid \(name) text")
        }
        return text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
    }
}
