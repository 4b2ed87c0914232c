import Foundation

/// Turns a source VM's domain XML into its clone's: new name, no UUID and no MACs (libvirt
/// makes fresh ones), the clone's own disk paths and formats, its own NVRAM and serial log
/// files, and VMDriver's record of where it came from.
struct CloneDefinition {
    /// VMDriver's namespace in `<metadata>`.
    static let namespace = "https://vmdriver.dev/xmlns/clone/1.0"

    /// Where a linked clone came from: enough to find and protect its parent.
    struct Lineage: Sendable, Equatable {
        var parentUUID: UUID
        var parentName: String
        var type: String
        var snapshot: String?
        /// The frozen images the clone's overlays rest on.
        var bases: [String]
    }

    private let root: XMLTree

    init(sourceXML: String) throws(VMDriverError) {
        do {
            root = try XMLTree.parse(sourceXML)
        } catch {
            throw VMDriverError(.failed, "libvirt returned a domain definition VMDriver cannot read: \(error)")
        }
    }

    /// Validates a new VM name: it becomes part of file names and XML, so no path separators,
    /// no control characters, nothing empty or dot-only. XML-special characters are allowed:
    /// they are escaped when the XML is written.
    static func validate(name: String) throws(VMDriverError) {
        let problem = Validation.nameProblem(name)
        if let problem {
            throw VMDriverError(
                .invalidParameter, "'\(name.debugDescription.dropFirst().dropLast())' cannot name a VM: \(problem)")
        }
    }

    /// The rewritten definition.
    /// - Parameters:
    ///   - disks: guest device (vda) → (clone path, clone format) for every disk the clone gets its
    ///     own copy of. Keyed by device, not path: freezing the source for a linked clone has
    ///     just moved the source to a new overlay.
    ///   - uuid: the clone's UUID (nil: libvirt makes one).
    ///   - logDirectory: where the clone's serial/console log files go.
    ///   - nvram: the clone's NVRAM file, when the source has one.
    ///   - vmxPath: the `.vmx` path the clone answers to (VixVM_Clone's destConfigPathName).
    ///   - seed: the clone's own NoCloud seed and its path; a seed the source had is never kept.
    func rewritten(
        name: String, uuid: UUID? = nil, disks: [String: (path: String, format: String)], logDirectory: String,
        nvram: String?, lineage: Lineage?, vmxPath: String? = nil, seed: ClonePlan.Seed? = nil
    ) -> String {
        let root = self.root
        // The source's identity is not the clone's.
        NoCloudSeed.detach(from: root)
        // Only the text: a <name> with elements inside would not read back as the name.
        root.child("name")?.removeChildren { _ in true }
        root.child("name")?.text = name
        root.removeChildren { $0.name == "uuid" }
        if let nvram, let element = root.child("os")?.child("nvram") { element.text = nvram }
        let devices = root.child("devices")
        for interface in devices?.children("interface") ?? [] {
            interface.removeChildren { $0.name == "mac" }
        }
        for disk in devices?.children("disk") ?? [] {
            guard let source = disk.child("source"), let target = disk.child("target")?.attributes["dev"],
                let replacement = disks[target]
            else { continue }
            source.set("dev", nil)
            source.set("file", replacement.path)
            disk.set("type", "file")
            disk.child("driver")?.set("type", replacement.format)
            disk.removeChildren { $0.name == "backingStore" }
        }
        // Character devices that write to files get the clone's own files; a log of the
        // source's is dropped rather than shared.
        var index = 0
        for kind in ["serial", "console", "parallel", "channel"] {
            for device in devices?.children(kind) ?? [] {
                device.removeChildren { $0.name == "log" }
                guard device.attributes["type"] == "file", let source = device.child("source"), source.attributes["path"] != nil
                else { continue }
                source.set("path", "\(logDirectory)/\(name)-\(kind)\(index).log")
                index += 1
            }
        }
        // A console that mirrors serial0 points at the same file: keep them together.
        if let serial = devices?.children("serial").first?.child("source")?.attributes["path"] {
            for console in devices?.children("console") ?? [] where console.attributes["type"] == "file" {
                console.child("source")?.set("path", serial)
            }
        }
        // The source's own clone record (it may be a linked clone itself) is not the clone's.
        root.child("metadata")?.removeChildren { $0.name.hasSuffix(":clone") && $0.attributes.values.contains(Self.namespace) }
        // Nor is the .vmx the source came from: opening that file must find the source.
        root.child("metadata")?.removeChildren { $0.attributes.values.contains(VMXRecord.namespace) }
        // Nor are the records of operations running on the source (other clones being made),
        // nor the source's own clones.
        root.child("metadata")?.removeChildren { element in
            element.attributes.contains {
                $0.key.hasPrefix("xmlns")
                    && ($0.value == OperationRecord.namespace || OperationRecords.clones.owns($0.value)
                        || CloneChildren.metadata.owns($0.value))
            }
        }
        if let uuid { root.append("uuid", text: uuid.uuidString.lowercased()) }
        if let vmxPath {
            (root.child("metadata") ?? root.append("metadata")).append(
                "vmdriver:vmx", attributes: [("xmlns:vmdriver", VMXRecord.namespace), ("path", vmxPath)])
        }
        if let seed { seed.seed.attach(path: seed.path, unit: seed.unit, to: root) }
        if let lineage {
            let metadata = root.child("metadata") ?? root.append("metadata")
            let record = metadata.append(
                "vmdriver:clone",
                attributes: [
                    ("xmlns:vmdriver", Self.namespace), ("parent-uuid", lineage.parentUUID.uuidString.lowercased()),
                    ("parent-name", lineage.parentName), ("type", lineage.type),
                ] + (lineage.snapshot.map { [("snapshot", $0)] } ?? []))
            for base in lineage.bases { record.append("vmdriver:base", attributes: [("path", base)]) }
        }
        return root.serialized()
    }

    /// Reads VMDriver's clone record from a domain's XML, if it has one.
    static func lineage(in xml: String) -> Lineage? {
        guard let root = try? XMLTree.parse(xml),
            let record = root.child("metadata")?.children.first(where: {
                $0.name.hasSuffix(":clone") && $0.attributes.values.contains(namespace)
            }),
            let uuidText = record.attributes["parent-uuid"], let uuid = UUID(uuidString: uuidText)
        else { return nil }
        return Lineage(
            parentUUID: uuid, parentName: record.attributes["parent-name"] ?? "", type: record.attributes["type"] ?? "",
            snapshot: record.attributes["snapshot"],
            bases: record.children.filter { $0.name.hasSuffix(":base") }.compactMap { $0.attributes["path"] })
    }
}
