import CLibvirt
import Foundation
import Testing

@testable import Libvirt

/// The Libvirt layer copies libvirt's constants into Swift (flag OptionSets, error codes, state and
/// event enums, typed-parameter keys), each member's doc comment naming its C constant
/// (`/// VIR_MIGRATE_LIVE`). These tests read the layer's sources and libvirt's installed headers
/// and compare every such member with the header's value: a copy that drifted, a doc comment
/// naming a constant the headers do not have, or a raw-valued member that names none fails here.
@Suite("libvirt's constants, checked against its C headers")
struct CConstantTests {
    static let headers = LibvirtHeaders.load()
    static let sources = LibvirtSources.load()

    /// The header reader agrees with the C compiler, for each shape a header value takes: an
    /// explicit number, a shift, a value counted on from the previous enumerator, a string macro.
    @Test func theHeaderReaderAgreesWithTheCompiler() throws {
        let headers = try Self.headers.get()
        let compiled: [(String, Int64)] = [
            ("VIR_MIGRATE_LIVE", Int64(VIR_MIGRATE_LIVE.rawValue)),
            ("VIR_MIGRATE_PARALLEL", Int64(VIR_MIGRATE_PARALLEL.rawValue)),
            ("VIR_DOMAIN_UNDEFINE_TPM", Int64(VIR_DOMAIN_UNDEFINE_TPM.rawValue)),
            ("VIR_ERR_OK", Int64(VIR_ERR_OK.rawValue)),
            ("VIR_ERR_INTERNAL_ERROR", Int64(VIR_ERR_INTERNAL_ERROR.rawValue)),
            ("VIR_ERR_MIGRATE_UNSAFE", Int64(VIR_ERR_MIGRATE_UNSAFE.rawValue)),
            ("VIR_ERR_MULTIPLE_DOMAINS", Int64(VIR_ERR_MULTIPLE_DOMAINS.rawValue)),
            ("VIR_DOMAIN_PMSUSPENDED", Int64(VIR_DOMAIN_PMSUSPENDED.rawValue)),
            ("VIR_DOMAIN_EVENT_CRASHED", Int64(VIR_DOMAIN_EVENT_CRASHED.rawValue)),
            ("VIR_DOMAIN_BLOCK_JOB_READY", Int64(VIR_DOMAIN_BLOCK_JOB_READY.rawValue)),
            ("VIR_DOMAIN_JOB_CANCELLED", Int64(VIR_DOMAIN_JOB_CANCELLED.rawValue)),
            ("VIR_TYPED_PARAM_STRING", Int64(VIR_TYPED_PARAM_STRING.rawValue)),
            ("VIR_UUID_STRING_BUFLEN", Int64(VIR_UUID_STRING_BUFLEN)),
        ]
        for (name, value) in compiled {
            #expect(
                headers.integers[name] == value, "\(name): the header reader says \(String(describing: headers.integers[name]))")
        }
        let strings: [(String, String)] = [
            ("VIR_MIGRATE_PARAM_URI", VIR_MIGRATE_PARAM_URI),
            ("VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY", VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY),
            ("VIR_DOMAIN_JOB_ERRMSG", VIR_DOMAIN_JOB_ERRMSG),
        ]
        for (name, value) in strings {
            #expect(
                headers.strings[name] == value, "\(name): the header reader says \(String(describing: headers.strings[name]))")
        }
    }

    /// Every member whose doc comment names a C constant holds that constant's value: a flag's or
    /// code's raw value, or a typed-parameter field's key in its type's key table.
    @Test func everyCopiedConstantHasTheHeadersValue() throws {
        let headers = try Self.headers.get()
        let sources = try Self.sources.get()
        for copy in sources.copies {
            switch copy.value {
            case .integer(let value):
                guard let c = headers.integers[copy.cName] else {
                    Issue.record(
                        "\(copy.place): \(copy.member) names \(copy.cName), which libvirt's headers do not define as a number")
                    continue
                }
                #expect(value == c, "\(copy.place): \(copy.member) is \(value), \(copy.cName) is \(c)")
            case .key(let key):
                guard let c = headers.strings[copy.cName] else {
                    Issue.record(
                        "\(copy.place): \(copy.member) names \(copy.cName), which libvirt's headers do not define as a string")
                    continue
                }
                #expect(key == c, "\(copy.place): \(copy.member)'s key is \"\(key)\", \(copy.cName) is \"\(c)\"")
            case .noValue:
                // The Swift member holds no value (a typed value's case): the code that maps it
                // uses the C constant itself. The name must still exist.
                let known = headers.names.contains(copy.cName)
                #expect(known, "\(copy.place): \(copy.cName) is not in libvirt's headers")
            case .unreadable(let why):
                Issue.record("\(copy.place): \(copy.member) names \(copy.cName), but its value cannot be read: \(why)")
            }
        }
        // A reader that found nothing would pass everything above.
        let files = Set(sources.copies.map(\.file))
        for file in [
            "Flags.swift", "LibvirtError.swift", "Domain.swift", "Domain+BlockJobs.swift", "Domain+Jobs.swift",
            "Domain+Migration.swift", "DomainSnapshot.swift", "Events.swift", "TypedParameters.swift",
        ] {
            #expect(files.contains(file), "no copied constant found in \(file)")
        }
        #expect(sources.copies.count > 150, "only \(sources.copies.count) copied constants found")
    }

    /// Every libvirt name a comment in the layer mentions is one libvirt's headers define.
    @Test func everyConstantNamedInACommentExists() throws {
        let headers = try Self.headers.get()
        let sources = try Self.sources.get()
        for mention in sources.mentions {
            let known = headers.names.contains(mention.name)
            #expect(known, "\(mention.place): \(mention.name) is not in libvirt's headers")
        }
    }

    /// A member with a raw value (a flag, a code, a state) says which C constant it copies.
    @Test func everyRawValuedMemberNamesItsConstant() throws {
        for member in try Self.sources.get().unnamed {
            Issue.record("\(member.place): \(member.member) has a raw value but no `/// VIR_…` doc comment naming its C constant")
        }
    }

    /// `LibvirtError.Code`'s names table (its description) agrees with the members.
    @Test func everyErrorCodeIsNamedAfterItsMember() throws {
        let codes = try Self.sources.get().copies.filter { $0.file == "LibvirtError.swift" }
        #expect(!codes.isEmpty)
        for code in codes {
            guard case .integer(let value) = code.value, let raw = Int32(exactly: value) else { continue }
            #expect(LibvirtError.Code(rawValue: raw).description == code.member, "\(code.place)")
        }
    }
}

// MARK: - libvirt's headers

/// The constants libvirt's installed headers define: enumerators (explicit or counted on from the
/// previous one) and object-like macros, numbers and strings.
struct LibvirtHeaders {
    var integers: [String: Int64] = [:]
    var strings: [String: String] = [:]
    var names: Set<String> = []

    static let directory = "/usr/include/libvirt"

    static func load() -> Result<LibvirtHeaders, HeaderError> {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".h") } ?? []
        guard !files.isEmpty else { return .failure(HeaderError(message: "no headers in \(directory) (apt libvirt-dev)")) }
        var headers = LibvirtHeaders()
        var macros: [(String, String)] = []
        for file in files.sorted() {
            guard let text = try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8) else {
                return .failure(HeaderError(message: "cannot read \(directory)/\(file)"))
            }
            let code = withoutComments(text)
            for match in code.matches(of: #/enum\s*\w*\s*\{([^}]*)\}/#) {
                // An enumerator without a value is the previous one's plus one; after one whose
                // value cannot be read, the count is lost (nil) until the next explicit value.
                var next: Int64? = 0
                let body = String(match.output.1).split(separator: "\n").filter {
                    !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#")
                }
                for item in body.joined(separator: "\n").split(separator: ",") {
                    let parts = item.split(separator: "=", maxSplits: 1).map {
                        $0.trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                    guard let name = parts.first, !name.isEmpty else { continue }
                    let value = parts.count == 2 ? Expression.evaluate(parts[1], names: headers.integers) : next
                    headers.names.insert(name)
                    headers.integers[name] = value
                    next = value.map { $0 + 1 }
                }
            }
            for line in code.split(separator: "\n") where line.contains("define") {
                if let match = line.wholeMatch(of: #/\s*#\s*define\s+(VIR_[A-Za-z0-9_]+)(?:\s+(.*))?/#) {
                    let name = String(match.output.1)
                    headers.names.insert(name)
                    macros.append((name, match.output.2.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""))
                }
            }
        }
        for (name, value) in macros {
            if let literal = value.wholeMatch(of: #/"([^"\\]*)"/#) {
                headers.strings[name] = String(literal.output.1)
            } else if let number = Expression.evaluate(value, names: headers.integers) {
                headers.integers[name] = number
            }
        }
        return .success(headers)
    }

    /// C source without its /* */ and // comments (none of libvirt's strings contains either);
    /// line ends are kept.
    static func withoutComments(_ text: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            if bytes[index] == UInt8(ascii: "/") && next == UInt8(ascii: "*") {
                index += 2
                while index < bytes.count
                    && !(bytes[index] == UInt8(ascii: "*") && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "/"))
                {
                    if bytes[index] == UInt8(ascii: "\n") { out.append(bytes[index]) }
                    index += 1
                }
                index += 2
                out.append(UInt8(ascii: " "))
            } else if bytes[index] == UInt8(ascii: "/") && next == UInt8(ascii: "/") {
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

struct HeaderError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// An integer constant expression as libvirt's headers and the Swift copies write them: numbers
/// (decimal or hex, C suffixes, Swift underscores), names, parentheses, unary minus and ~, *, +,
/// -, << and |. nil for anything else or an unknown name.
enum Expression {
    static func evaluate(_ text: String, names: [String: Int64]) -> Int64? {
        var tokens: [String] = []
        var rest = Substring(text)
        while let first = rest.first {
            if first.isWhitespace {
                rest = rest.dropFirst()
            } else if let match = rest.prefixMatch(of: #/0[xX][0-9a-fA-F_]+|[0-9][0-9_]*|[A-Za-z_][A-Za-z0-9_]*|<<|[()|+*~-]/#) {
                tokens.append(String(match.output))
                rest = rest[match.range.upperBound...]
            } else {
                return nil
            }
        }
        var parser = Parser(tokens: tokens, names: names)
        guard let value = parser.or(), parser.position == tokens.count else { return nil }
        return value
    }

    struct Parser {
        let tokens: [String]
        let names: [String: Int64]
        var position = 0

        mutating func take(_ token: String) -> Bool {
            guard position < tokens.count, tokens[position] == token else { return false }
            position += 1
            return true
        }

        mutating func or() -> Int64? {
            guard var value = shift() else { return nil }
            while take("|") {
                guard let right = shift() else { return nil }
                value |= right
            }
            return value
        }

        mutating func shift() -> Int64? {
            guard var value = sum() else { return nil }
            while take("<<") {
                guard let right = sum(), (0..<63).contains(right) else { return nil }
                value <<= right
            }
            return value
        }

        mutating func sum() -> Int64? {
            guard var value = product() else { return nil }
            while true {
                if take("+") {
                    guard let right = product() else { return nil }
                    value += right
                } else if take("-") {
                    guard let right = product() else { return nil }
                    value -= right
                } else {
                    return value
                }
            }
        }

        mutating func product() -> Int64? {
            guard var value = unary() else { return nil }
            while take("*") {
                guard let right = unary() else { return nil }
                value *= right
            }
            return value
        }

        mutating func unary() -> Int64? {
            if take("-") { return unary().map { -$0 } }
            if take("~") { return unary().map { ~$0 } }
            if take("(") {
                guard let value = or(), take(")") else { return nil }
                return value
            }
            guard position < tokens.count else { return nil }
            let token = tokens[position]
            position += 1
            if let value = names[token] { return value }
            // C suffixes (1U, 2UL) on a number token: the token itself stops before them, so a
            // suffix arrives as the next token.
            if position < tokens.count, tokens[position].allSatisfy({ "uUlL".contains($0) }) { position += 1 }
            let digits = token.replacingOccurrences(of: "_", with: "")
            if digits.hasPrefix("0x") || digits.hasPrefix("0X") { return Int64(digits.dropFirst(2), radix: 16) }
            return Int64(digits)
        }
    }
}

// MARK: - The Swift copies

/// What the Libvirt layer's sources say about libvirt's constants.
struct LibvirtSources {
    struct Copy {
        enum Value {
            case integer(Int64)
            case key(String)
            case noValue
            case unreadable(String)
        }
        let file: String
        let line: Int
        let cName: String
        let member: String
        let value: Value
        var place: String { "\(file):\(line)" }
    }
    struct Mention {
        let file: String
        let line: Int
        let name: String
        var place: String { "\(file):\(line)" }
    }
    struct Unnamed {
        let file: String
        let line: Int
        let member: String
        var place: String { "\(file):\(line)" }
    }

    var copies: [Copy] = []
    var mentions: [Mention] = []
    var unnamed: [Unnamed] = []

    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/Libvirt")

    static func load() -> Result<LibvirtSources, HeaderError> {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
            return .failure(HeaderError(message: "cannot list \(directory.path)"))
        }
        var sources = LibvirtSources()
        for case let url as URL in walker where url.pathExtension == "swift" {
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                return .failure(HeaderError(message: "cannot read \(url.path)"))
            }
            sources.read(text, file: url.lastPathComponent)
        }
        return sources.copies.isEmpty ? .failure(HeaderError(message: "no copies found in \(directory.path)")) : .success(sources)
    }

    mutating func read(_ text: String, file: String) {
        let lines = text.components(separatedBy: "\n")
        // The file's typed-parameter key tables: `.kind("key", \.member)`.
        let keys = text.matches(of: #/\.\w+\("([^"]+)", \\\.(\w+)\)/#).map { (String($0.output.2), String($0.output.1)) }
        var docName: String?
        var inDoc = false
        for (index, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.contains("VIR_"), let comment = trimmed.firstRange(of: "//").map({ trimmed[$0.upperBound...] }) {
                for match in comment.matches(of: #/\bVIR_[A-Z0-9_]*[A-Z0-9]\b/#) {
                    mentions.append(Mention(file: file, line: index + 1, name: String(match.output)))
                }
            }
            if trimmed.hasPrefix("///") {
                if !inDoc,
                    let first = trimmed.dropFirst(3).trimmingCharacters(in: .whitespaces).prefixMatch(of: #/VIR_[A-Z0-9_]+/#)
                {
                    docName = String(first.output)
                }
                inDoc = true
                continue
            }
            if trimmed.hasPrefix("@") && inDoc { continue }
            defer {
                inDoc = false
                docName = nil
            }
            guard let declaration = Self.declaration(trimmed, keys: keys) else {
                if inDoc, let cName = docName {
                    copies.append(
                        Copy(
                            file: file, line: index + 1, cName: cName, member: "?",
                            value: .unreadable("not a member declaration: \(trimmed)")))
                }
                continue
            }
            let (member, value) = declaration
            if let cName = inDoc ? docName : nil {
                copies.append(Copy(file: file, line: index + 1, cName: cName, member: member, value: value))
            } else if case .integer = value {
                unnamed.append(Unnamed(file: file, line: index + 1, member: member))
            }
        }
    }

    /// The member a line declares and the value it holds: a raw value, a typed-parameter key (from
    /// the file's key table), no value (a case with a payload), or unreadable. nil: not a member.
    static func declaration(_ line: String, keys: [(member: String, key: String)]) -> (String, Copy.Value)? {
        if let match = line.firstMatch(of: #/static let (\w+) = \w+\(rawValue: (.+)\)$/#) {
            return (String(match.output.1), value(String(match.output.2)))
        }
        if let match = line.wholeMatch(of: #/case (\w+) = (.+)/#) {
            return (String(match.output.1), value(String(match.output.2)))
        }
        if let match = line.firstMatch(of: #/^(?:public )?var (\w+): /#) {
            let member = String(match.output.1)
            let entries = keys.filter { $0.member == member }
            guard entries.count == 1, let entry = entries.first else {
                return (member, .unreadable("\(entries.count) entries for \\.\(member) in the file's key table"))
            }
            return (member, .key(entry.key))
        }
        if let match = line.firstMatch(of: #/^case (\w+)\(/#) {
            return (String(match.output.1), .noValue)
        }
        if line.contains("rawValue:") || line.hasPrefix("case ") {
            return ("?", .unreadable("cannot read the declaration: \(line)"))
        }
        return nil
    }

    static func value(_ expression: String) -> Copy.Value {
        Expression.evaluate(expression, names: [:]).map { .integer($0) } ?? .unreadable("cannot evaluate \(expression)")
    }
}
