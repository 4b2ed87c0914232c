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

    static let metadata = KeyedMetadata(namespacePrefix: "http://vmdriver.invalid/xmlns/child/1/", prefix: "vmdchild")

    /// Records `child` on its parent's domain. Blocking.
    static func add(_ child: Child, to parent: Domain) throws {
        let element = XMLTree(name: "child")
        element.set("name", child.name)
        element.set("host", child.host)
        try metadata.write(element.serialized(), key: child.uuid, to: parent)
    }

    /// Forgets `clone` on its parent (promoted or deleted). Best effort. Blocking.
    static func remove(_ clone: UUID, from parent: Domain) { metadata.remove(clone, from: parent) }

    /// The clones recorded on a domain. Blocking.
    static func read(_ domain: Domain) throws -> [Child] {
        try metadata.elements(of: domain).map { key, element in
            Child(uuid: key, name: element.attributes["name"] ?? "?", host: element.attributes["host"] ?? "?")
        }
    }
}
