import Foundation
internal import Libvirt

/// The linked clones made of a VM, recorded on the VM itself (one element per clone in its
/// libvirt metadata, so clones made side by side never overwrite each other's). The record
/// travels with the VM when it migrates: on a host where a clone is not defined, the VM still
/// knows that the clone may rest on its images (on shared storage, from another host), and
/// `delete` refuses to remove them. A clone's own lineage (`CloneDefinition.Lineage`) names its
/// parent; this is the other direction.
enum CloneChildren {
    struct Child: Sendable, Equatable {
        var uuid: UUID
        var name: String
        /// The host the clone was made on.
        var host: String
    }

    static let namespacePrefix = "http://vmdriver.invalid/xmlns/child/1/"
    static let prefix = "vmdchild"

    static func namespace(_ clone: UUID) -> String { namespacePrefix + clone.uuidString.lowercased() }

    /// Records `child` on its parent's domain. Blocking.
    static func add(_ child: Child, to parent: Domain) throws {
        let element = XMLTree(name: "child")
        element.set("name", child.name)
        element.set("host", child.host)
        try parent.setMetadata(
            .element, element.serialized(), key: prefix, uri: namespace(child.uuid), try OperationRecords.impact(of: parent))
    }

    /// Forgets `clone` on its parent (promoted or deleted). Best effort. Blocking.
    static func remove(_ clone: UUID, from parent: Domain) {
        try? parent.setMetadata(.element, nil, uri: namespace(clone), try OperationRecords.impact(of: parent))
    }

    /// The clones recorded on a domain. Blocking.
    static func read(_ domain: Domain) throws -> [Child] {
        let flags: Domain.XMLFlags = try domain.isActive() ? [] : [.inactive]
        let root = try XMLTree.parse(try domain.xmlDescription(flags))
        return (root.child("metadata")?.children ?? []).compactMap { element in
            guard
                let uri = element.attributes.first(where: { $0.key.hasPrefix("xmlns") && $0.value.hasPrefix(namespacePrefix) })?
                    .value,
                let uuid = UUID(uuidString: String(uri.dropFirst(namespacePrefix.count)))
            else { return nil }
            return Child(uuid: uuid, name: element.attributes["name"] ?? "?", host: element.attributes["host"] ?? "?")
        }
    }
}
