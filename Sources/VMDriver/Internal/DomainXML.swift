import Foundation

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
        let root: XMLTree
        do {
            root = try XMLTree.parse(text)
        } catch {
            throw VMDriverError(.invalidParameter, "\(origin) is not well-formed XML: \(error)")
        }
        guard root.name == "domain" else {
            throw VMDriverError(
                .invalidParameter,
                "\(origin) is not a libvirt domain definition: its root element is <\(root.name)>, not <domain>")
        }
        type = root.attributes["type"] ?? ""
        name = root.child("name")?.trimmedText
        if let uuidText = root.child("uuid")?.trimmedText {
            guard let uuid = UUID(uuidString: uuidText) ?? Self.compactUUID(uuidText) else {
                throw VMDriverError(.invalidParameter, "\(origin) has an invalid <uuid> '\(uuidText)'")
            }
            self.uuid = uuid
        } else {
            uuid = nil
        }
        let devices = root.child("devices")
        disks = (devices?.children("disk") ?? []).map { disk in
            let source = disk.child("source")
            let path =
                source?.attributes["file"] ?? source?.attributes["dev"]
                ?? source.flatMap { s in s.attributes["volume"].map { "\(s.attributes["pool"] ?? "?")/\($0)" } }
            return Disk(
                device: disk.attributes["device"] ?? "disk",
                sourceType: disk.attributes["type"] ?? "file",
                path: path,
                format: disk.child("driver")?.attributes["type"],
                target: disk.child("target")?.attributes["dev"] ?? "",
                readOnly: disk.child("readonly") != nil)
        }
        interfaces = (devices?.children("interface") ?? []).map { interface in
            let source = interface.child("source")
            return Interface(
                type: interface.attributes["type"] ?? "",
                mac: interface.child("mac")?.attributes["address"],
                source: ["network", "bridge", "dev", "address"].lazy.compactMap { source?.attributes[$0] }.first,
                model: interface.child("model")?.attributes["type"])
        }
    }

    /// libvirt also accepts UUIDs written without dashes.
    private static func compactUUID(_ text: String) -> UUID? {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32 else { return nil }
        let chars = Array(hex)
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(chars[$0]) }
        return UUID(uuidString: parts.joined(separator: "-"))
    }
}

extension XMLTree {
    /// In a domain definition, puts each disk whose target `images` names on that file, in
    /// that format, with no backing store of its own: a new top image (a revert's overlay) or a
    /// standalone copy (a conversion).
    func pointDisks(at images: [String: (path: String, format: String)]) {
        for element in child("devices")?.children("disk") ?? [] {
            guard let target = element.child("target")?.attributes["dev"], let image = images[target] else { continue }
            element.set("type", "file")
            element.removeChildren { $0.name == "source" || $0.name == "backingStore" }
            element.append("source", attributes: [("file", image.path)])
            if let driver = element.child("driver") {
                driver.set("type", image.format)
            } else {
                element.append("driver", attributes: [("name", "qemu"), ("type", image.format)])
            }
        }
    }
}
