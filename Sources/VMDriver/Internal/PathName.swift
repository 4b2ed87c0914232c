/// The last component and the parent of a path, in plain Swift.
///
/// swift-corelibs-foundation's `NSString.lastPathComponent` and `deletingLastPathComponent`
/// crash (a Substring index out of bounds) on paths such as "/srv//é": a doubled slash before
/// a non-ASCII component. Paths reach VMDriver from users and from domain XML, so it never
/// hands them to those two. (`standardizingPath` is not affected.) The split is on Unicode
/// scalars, as the file system sees it, not on Characters: "/" followed by a combining mark
/// is one Character, and a name starting with U+0650 would otherwise hide the slash.
enum PathName {
    /// "/a/b/c.qcow2" → "c.qcow2"; "/a/b/" → "b"; "/" → "/"; "" → "".
    static func last(_ path: String) -> String {
        if let last = path.unicodeScalars.split(separator: "/").last { return String(String.UnicodeScalarView(last)) }
        return path.unicodeScalars.first == "/" ? "/" : ""
    }

    /// "/a/b/c.qcow2" → "/a/b"; "/a" → "/"; "a" → ""; "/" → "/"; "/a//b" → "/a".
    static func parent(_ path: String) -> String {
        var parts = path.unicodeScalars.split(separator: "/").map { String(String.UnicodeScalarView($0)) }
        let absolute = path.unicodeScalars.first == "/"
        guard !parts.isEmpty else { return absolute ? "/" : "" }
        parts.removeLast()
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : joined
    }
}
