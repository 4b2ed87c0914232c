/// The last component and the parent of a path, in plain Swift.
///
/// swift-corelibs-foundation's `NSString.lastPathComponent` and `deletingLastPathComponent`
/// crash (a Substring index out of bounds) on paths such as "/srv//é": a doubled slash before
/// a non-ASCII component. Paths reach VMDriver from users and from domain XML, so it never
/// hands them to those two. (`standardizingPath` is not affected.)
enum PathName {
    /// "/a/b/c.qcow2" → "c.qcow2"; "/a/b/" → "b"; "/" → "/"; "" → "".
    static func last(_ path: String) -> String {
        if let last = path.split(separator: "/").last { return String(last) }
        return path.hasPrefix("/") ? "/" : ""
    }

    /// "/a/b/c.qcow2" → "/a/b"; "/a" → "/"; "a" → ""; "/" → "/"; "/a//b" → "/a".
    static func parent(_ path: String) -> String {
        var parts = path.split(separator: "/")
        let absolute = path.hasPrefix("/")
        guard !parts.isEmpty else { return absolute ? "/" : "" }
        parts.removeLast()
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : joined
    }
}
