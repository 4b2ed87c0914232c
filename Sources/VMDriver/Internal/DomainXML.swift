import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// What VMDriver reads from a libvirt domain XML document.
struct DomainXML {
    struct Disk {
        var device: String
        var sourceType: String
        var path: String?
        var format: String?
        var target: String
        var readOnly: Bool
    }

    struct Interface {
        var type: String
        var mac: String?
        var source: String?
        var model: String?
    }

    var type: String
    var name: String?
    var uuid: UUID?
    var disks: [Disk]
    var interfaces: [Interface]

    /// Parses `text`; throws a code 4 error naming `origin` when it is not a domain XML document.
    init(parsing text: String, origin: String) throws(VMDriverError) {
        let document: XMLDocument
        do {
            document = try XMLDocument(xmlString: text, options: [])
        } catch {
            throw VMDriverError(.invalidParameter, "\(origin) is not well-formed XML: \(Self.reason(error))")
        }
        guard let root = document.rootElement(), root.name == "domain" else {
            throw VMDriverError(
                .invalidParameter,
                "\(origin) is not a libvirt domain definition: its root element is <\(document.rootElement()?.name ?? "none")>, not <domain>")
        }
        type = root.attribute(forName: "type")?.stringValue ?? ""
        name = Self.text(root, "name")
        if let uuidText = Self.text(root, "uuid") {
            guard let uuid = UUID(uuidString: uuidText) ?? Self.compactUUID(uuidText) else {
                throw VMDriverError(.invalidParameter, "\(origin) has an invalid <uuid> '\(uuidText)'")
            }
            self.uuid = uuid
        } else {
            uuid = nil
        }
        let devices = root.elements(forName: "devices").first
        disks = (devices?.elements(forName: "disk") ?? []).map { disk in
            let source = disk.elements(forName: "source").first
            let path =
                source?.attribute(forName: "file")?.stringValue ?? source?.attribute(forName: "dev")?.stringValue
                ?? source.flatMap { s in
                    s.attribute(forName: "volume")?.stringValue.map { vol in
                        "\(s.attribute(forName: "pool")?.stringValue ?? "?")/\(vol)"
                    }
                }
            return Disk(
                device: disk.attribute(forName: "device")?.stringValue ?? "disk",
                sourceType: disk.attribute(forName: "type")?.stringValue ?? "file",
                path: path,
                format: disk.elements(forName: "driver").first?.attribute(forName: "type")?.stringValue,
                target: disk.elements(forName: "target").first?.attribute(forName: "dev")?.stringValue ?? "",
                readOnly: !disk.elements(forName: "readonly").isEmpty)
        }
        interfaces = (devices?.elements(forName: "interface") ?? []).map { interface in
            let source = interface.elements(forName: "source").first
            let sourceName = ["network", "bridge", "dev", "address"].lazy
                .compactMap { source?.attribute(forName: $0)?.stringValue }.first
            return Interface(
                type: interface.attribute(forName: "type")?.stringValue ?? "",
                mac: interface.elements(forName: "mac").first?.attribute(forName: "address")?.stringValue,
                source: sourceName,
                model: interface.elements(forName: "model").first?.attribute(forName: "type")?.stringValue)
        }
    }

    private static func text(_ element: XMLElement, _ child: String) -> String? {
        element.elements(forName: child).first?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// libvirt also accepts UUIDs written without dashes.
    private static func compactUUID(_ text: String) -> UUID? {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32 else { return nil }
        let chars = Array(hex)
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(chars[$0]) }
        return UUID(uuidString: parts.joined(separator: "-"))
    }

    private static func reason(_ error: any Error) -> String {
        let text = (error as NSError).userInfo[NSLocalizedDescriptionKey] as? String ?? "\(error)"
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
