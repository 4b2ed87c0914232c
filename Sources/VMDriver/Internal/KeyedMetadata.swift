import Foundation
internal import Libvirt

/// VMDriver's elements in a domain's `<metadata>` that come one per key: a namespace made of a
/// prefix and the key (a UUID), so several processes can each write and remove their own
/// element without reading the others' (libvirt's metadata has no compare-and-set). Clone
/// records on a source and the record of a parent's linked clones use it. Blocking.
struct KeyedMetadata: Sendable {
    /// The namespace before the key: `http://vmdriver.invalid/xmlns/clone/1/`.
    let namespacePrefix: String
    /// The XML prefix libvirt writes the elements with.
    let prefix: String

    func namespace(_ key: UUID) -> String { namespacePrefix + key.uuidString.lowercased() }

    /// Whether `namespace` is one of these elements'.
    func owns(_ namespace: String) -> Bool { namespace.hasPrefix(namespacePrefix) }

    /// Writes (or replaces) the element for `key`, on the running domain and its definition.
    func write(_ xml: String, key: UUID, to domain: Domain) throws {
        try domain.setMetadata(.element, xml, key: prefix, uri: namespace(key), try OperationRecords.impact(of: domain))
    }

    /// Removes the element for `key`; true when the domain holds it no longer (a domain that is
    /// gone holds none).
    @discardableResult
    func remove(_ key: UUID, from domain: Domain) -> Bool {
        do {
            try domain.setMetadata(.element, nil, uri: namespace(key), try OperationRecords.impact(of: domain))
            return true
        } catch let error as LibvirtError where error.code == .noDomain || error.code == .noDomainMetadata {
            return true
        } catch {
            return false
        }
    }

    /// Every such element on the domain (the running one's, or the definition when it is off),
    /// with its key.
    func elements(of domain: Domain) throws -> [(key: UUID, element: XMLTree)] {
        let flags: Domain.XMLFlags = try domain.isActive() ? [] : [.inactive]
        let root = try XMLTree.parse(try domain.xmlDescription(flags))
        return (root.child("metadata")?.children ?? []).compactMap { element in
            guard let uri = element.attributes.first(where: { $0.key.hasPrefix("xmlns") && owns($0.value) })?.value,
                let key = UUID(uuidString: String(uri.dropFirst(namespacePrefix.count)))
            else { return nil }
            return (key, element)
        }
    }
}
