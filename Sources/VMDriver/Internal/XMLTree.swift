import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A small, strict XML tree. Built with `XMLParser`, which stops at the first well-formedness
/// error (Foundation's `XMLDocument` on Linux recovers from broken documents and prints
/// libxml2's complaints on stderr instead of failing).
final class XMLTree {
    let name: String
    var attributes: [String: String]
    /// Attribute names in document order, so a rewrite keeps the document's look.
    private(set) var attributeOrder: [String]
    private(set) var children: [XMLTree] = []
    var text = ""

    init(name: String, attributes: [String: String] = [:], order: [String]? = nil) {
        self.name = name
        self.attributes = attributes
        self.attributeOrder = order ?? attributes.keys.sorted()
    }

    /// Sets (or, with nil, removes) an attribute.
    func set(_ attribute: String, _ value: String?) {
        attributes[attribute] = value
        if value == nil {
            attributeOrder.removeAll { $0 == attribute }
        } else if !attributeOrder.contains(attribute) {
            attributeOrder.append(attribute)
        }
    }

    /// Appends a child element and returns it.
    @discardableResult
    func append(_ name: String, attributes: [(String, String)] = [], text: String = "") -> XMLTree {
        let child = XMLTree(name: name, attributes: Dictionary(uniqueKeysWithValues: attributes), order: attributes.map(\.0))
        child.text = text
        children.append(child)
        return child
    }

    /// Removes every child for which `predicate` holds.
    func removeChildren(where predicate: (XMLTree) -> Bool) {
        children.removeAll(where: predicate)
    }

    /// The document as text. Every attribute value and text is escaped here, so a value with
    /// `<`, `&` or quotes can never change the document's structure.
    func serialized() -> String {
        var out = ""
        write(to: &out, indent: 0)
        return out
    }

    private func write(to out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent)
        out += pad + "<" + name
        for key in attributeOrder {
            if let value = attributes[key] { out += " \(key)='\(Self.escape(value, quote: true))'" }
        }
        let body = trimmedText
        if children.isEmpty {
            out += body.isEmpty ? "/>\n" : ">\(Self.escape(body, quote: false))</\(name)>\n"
            return
        }
        out += ">\n"
        if !body.isEmpty { out += pad + "  " + Self.escape(body, quote: false) + "\n" }
        for child in children { child.write(to: &out, indent: indent + 1) }
        out += pad + "</\(name)>\n"
    }

    /// Escapes text for an element (`quote: false`) or a quoted attribute value. Works on
    /// scalars, not characters ("\r\n" is one character). In attribute values, tabs and line
    /// ends are written as references, or the parser would read them back as spaces (XML's
    /// attribute-value normalization); a carriage return is one everywhere, or it would be
    /// read back as a line feed.
    static func escape(_ text: String, quote: Bool) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "'" where quote: out.append(contentsOf: "&apos;".unicodeScalars)
            case "\"" where quote: out.append(contentsOf: "&quot;".unicodeScalars)
            case "\t" where quote: out.append(contentsOf: "&#9;".unicodeScalars)
            case "\n" where quote: out.append(contentsOf: "&#10;".unicodeScalars)
            case "\r": out.append(contentsOf: "&#13;".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// The first child named `name`.
    func child(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// Every child named `name`.
    func children(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }

    /// The element's text, trimmed.
    var trimmedText: String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var column: Int
        var reason: String
        var description: String { "line \(line), column \(column): \(reason)" }
    }

    /// Parses a whole document and returns its root element.
    static func parse(_ text: String) throws(ParseError) -> XMLTree {
        let builder = Builder()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = builder
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        let ok = parser.parse()
        let error = builder.failure ?? (parser.parserError as NSError?)
        guard ok, error == nil, let root = builder.root else {
            throw ParseError(
                line: parser.lineNumber, column: parser.columnNumber,
                reason: error.map { Self.describe($0) } ?? "the document is empty")
        }
        // XMLParser on Linux reports success for a document cut short: check every tag closed.
        if let open = builder.stack.last {
            throw ParseError(
                line: parser.lineNumber, column: parser.columnNumber,
                reason: "the document ends before <\(open.name)> is closed")
        }
        return root
    }

    private static func describe(_ error: NSError) -> String {
        // libxml2's error numbers behind XMLParser.ErrorCode, in words people know.
        switch error.code {
        case 4, 5: "the document is empty or ends too early"
        case 73, 76, 77: "a tag is not closed"
        case 9: "a character that XML does not allow"
        case 23, 26, 68: "an '&' that starts no known entity (write it as &amp;)"
        case 38, 39, 40, 41: "a malformed attribute"
        default: "not well-formed (XML parser error \(error.code))"
        }
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var root: XMLTree?
        var stack: [XMLTree] = []
        var failure: NSError?

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            // XMLParser hands attributes over as a dictionary: their order is lost, so sort
            // them for a stable output.
            let element = XMLTree(name: name, attributes: attributes)
            if let parent = stack.last {
                parent.children.append(element)
            } else if root == nil {
                root = element
            }
            stack.append(element)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            _ = stack.popLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack.last?.text += string
        }

        func parser(_ parser: XMLParser, foundCDATA block: Data) {
            stack.last?.text += String(decoding: block, as: UTF8.self)
        }

        func parser(_ parser: XMLParser, parseErrorOccurred error: any Error) {
            if failure == nil { failure = error as NSError }
        }
    }
}
