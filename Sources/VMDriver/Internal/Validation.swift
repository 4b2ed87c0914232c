import Foundation

/// The one set of rules for the names and paths users give VMDriver (VM, clone and snapshot
/// names; clone destinations, migration home folders, pkipaths). They end up in file names,
/// domain XML and libvirt calls, so one rule decides what a control character is everywhere:
/// C0, DEL and C1 (Unicode category Cc) and the Unicode line and paragraph separators.
/// Scalars, not Characters, are checked: "/" and a combining mark after it are one Character.
enum Validation {
    /// Whether `text` holds a control character or a line break of any kind.
    static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { [.control, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory) }
    }

    /// Why `name` cannot name a VM (or a snapshot), or nil. XML-special characters are allowed:
    /// they are escaped when the XML is written.
    static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        if name.utf8.count > 200 { return "it is longer than 200 bytes" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" }) { return "it contains a path separator" }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "it contains a control character"
        }
        if hasControlCharacters(name) { return "it contains a line break" }
        if name.unicodeScalars.contains(where: { $0.properties.isNoncharacterCodePoint }) {
            return "it contains a Unicode noncharacter, which XML does not allow"
        }
        if name == "." || name == ".." { return "it is a relative directory name" }
        if let first = name.unicodeScalars.first, first == "-" || first == "." { return "it starts with '\(first)'" }
        if let first = name.unicodeScalars.first,
            [.nonspacingMark, .spacingMark, .enclosingMark].contains(first.properties.generalCategory)
        {
            // It would combine with the "/" before it in a path into one Character.
            return "it starts with a combining mark"
        }
        if name != name.trimmingCharacters(in: .whitespaces) { return "it starts or ends with white space" }
        return nil
    }

    /// Why `path` cannot be a folder or file VMDriver makes or reads, or nil: libvirt wants
    /// absolute paths, a control character in one is a mistake or an attack, and a `.` or `..`
    /// component would put it somewhere else than it reads.
    static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "is empty" }
        if !path.hasPrefix("/") { return "is not an absolute path" }
        if hasControlCharacters(path) { return "has control characters in it" }
        if path.unicodeScalars.split(separator: "/").contains(where: {
            let component = String(String.UnicodeScalarView($0))
            return component == "." || component == ".."
        }) {
            return "has . or .. in it"
        }
        return nil
    }
}
