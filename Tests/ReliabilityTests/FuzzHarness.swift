// The fuzz targets' checks, shared by the property suite (FuzzPropertyTests replays the
// committed corpus through them) and the libFuzzer binary (Fuzz/, which links this file).
// Each check returns the properties an input broke: empty means the input was handled well.
// No Testing import here: the fuzzer has none.
import Foundation

@testable import VMDriver

enum FuzzHarness {
    /// The fuzz targets, by the name of their corpus folder (Fuzz/corpus/<name>).
    static let targets: [String: @Sendable (String) -> [String]] = [
        "destination": destination, "xml": xml, "name": name,
    ]

    /// The destination parser and the URIs built from what it accepts.
    @Sendable static func destination(_ text: String) -> [String] {
        var broken: [String] = []
        let parsed: MigrationDestination
        do {
            parsed = try MigrationDestination(parsing: text)
        } catch {
            if error.code != .invalidParameter { broken.append("refused with code \(error.code.rawValue), not 4") }
            if !error.message.contains("is not a migration destination") || !error.message.contains("libvirt URI") {
                broken.append("the refusal does not name the accepted formats: \(error.message)")
            }
            return broken
        }
        if parsed.host.isEmpty { broken.append("accepted with an empty host") }
        if !parsed.host.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && $0.value < 127 }) {
            broken.append("accepted a host with spaces, control or non-ASCII characters: \(parsed.host.debugDescription)")
        }
        if let port = parsed.port, !(1...65535).contains(port) { broken.append("accepted port \(port)") }
        if parsed.kind != .libvirtURI {
            // What VMDriver prints is a destination it reads back the same.
            if let again = try? MigrationDestination(parsing: parsed.description) {
                if again != parsed { broken.append("\(parsed.description) reads back as \(again)") }
            } else {
                broken.append("its own description \(parsed.description) is refused")
            }
            if parsed.host.contains("/") || parsed.host.contains("?") || parsed.host.contains("@") {
                broken.append("a host with URI delimiters: \(parsed.host)")
            }
        } else if let uri = parsed.uri, let components = URLComponents(string: uri) {
            if !MigrationDestination.transports.contains(components.scheme ?? "") {
                broken.append("accepted transport \(components.scheme ?? "none")")
            }
            let keys = Set((components.queryItems ?? []).map { $0.name.lowercased() })
            if !keys.isDisjoint(with: MigrationDestination.refusedParameters) {
                broken.append("accepted a URI that makes libvirt run a program: \(uri)")
            }
        }
        for security in MigrationOptions.Security.allCases {
            let peer = MigrationPlan.peerURI(destination: parsed, security: security)
            if parsed.uri == nil {
                if peer.contains("no_verify") { broken.append("built \(peer), which turns certificate checks off") }
                guard let components = URLComponents(string: peer) else {
                    broken.append("built \(peer), which is not a URI")
                    continue
                }
                let expected = security == .low ? "qemu+tcp" : "qemu+tls"
                if components.scheme != expected { broken.append("built \(peer) for security \(security), not \(expected)") }
                if components.path != "/system" || components.query != nil {
                    broken.append("built \(peer) with a path or query of its own")
                }
            }
            // A pkipath is data, never URI syntax: whatever it holds, the URI gains exactly one
            // parameter, pkipath, whose value is the path.
            let client = MigrationPlan.clientURI(peerURI: peer, pkiPath: text)
            if peer.contains("+tls://") {
                // Empty items ("?a=b&") are no parameters: libvirt skips them.
                let before = (URLComponents(string: peer)?.queryItems ?? []).map(\.name).filter { !$0.isEmpty }
                let items = (URLComponents(string: client)?.queryItems ?? []).filter { !$0.name.isEmpty }
                if items.map(\.name) != before + ["pkipath"] {
                    broken.append("pkipath \(text.debugDescription) changed the URI's parameters: \(client)")
                } else if items.last?.value != text {
                    broken.append("pkipath \(text.debugDescription) reads back as \(items.last?.value ?? "nil")")
                }
            } else if client != peer {
                broken.append("a pkipath was added to a URI that is not TLS: \(client)")
            }
        }
        return broken
    }

    /// XMLTree, DomainXML and both rewrites on any text: no crash; what parses serializes to a
    /// fixed point; a domain's clone and migration rewrites parse, carry the new name escaped,
    /// and are idempotent.
    @Sendable static func xml(_ text: String) -> [String] {
        var broken: [String] = []
        guard let tree = try? XMLTree.parse(text) else { return [] }
        let once = tree.serialized()
        guard let again = try? XMLTree.parse(once) else { return ["its own serialization does not parse: \(once)"] }
        if again.serialized() != once { broken.append("serialization is not a fixed point") }
        _ = try? DomainXML(parsing: text, origin: "fuzz input")
        guard tree.name == "domain" else { return broken }
        broken += cloneRewrite(text, name: "fuzz&<clone>'\"")
        broken += migrationRewrite(text, name: "fuzz&<moved>'\"")
        return broken
    }

    /// A VM name: refused with code 4, or usable both in XML (escaped, read back the same) and
    /// as part of a file name (no separator, no control character, never leaving the folder).
    @Sendable static func name(_ text: String) -> [String] {
        do {
            try CloneDefinition.validate(name: text)
        } catch {
            return error.code == .invalidParameter && error.message.contains("cannot name a VM")
                ? [] : ["refused with \(error.code.rawValue): \(error.message)"]
        }
        var broken: [String] = []
        if text.contains("/") || text.contains("\0") || text.contains(where: \.isNewline) || text.hasPrefix(".") {
            broken.append("accepted \(text.debugDescription), which cannot be part of a file name")
        }
        let directory = "/var/lib/vmdriver-fuzz"
        let file = "\(directory)/\(text)-vda.qcow2"
        if (file as NSString).standardizingPath != file || PathName.parent(file) != directory {
            broken.append("\(text.debugDescription) takes a clone's disk out of its folder: \(file)")
        }
        broken += cloneRewrite(sampleDomain, name: text)
        broken += migrationRewrite(sampleDomain, name: text)
        return broken
    }

    static func cloneRewrite(_ xml: String, name: String) -> [String] {
        guard let first = try? CloneDefinition(sourceXML: xml), let reference = try? XMLTree.parse(xml) else { return [] }
        let disks = Dictionary(
            (reference.child("devices")?.children("disk") ?? []).compactMap { disk -> (String, (path: String, format: String))? in
                guard let target = disk.child("target")?.attributes["dev"] else { return nil }
                return (target, (path: "/clones/\(name)-\(target).qcow2", format: "qcow2"))
            }, uniquingKeysWith: { a, _ in a })
        let lineage = CloneDefinition.Lineage(
            parentUUID: UUID(uuidString: "6695eb01-f6a4-8304-79aa-97f2502e193f")!, parentName: "p&<'\"",
            type: "linked", snapshot: nil, bases: ["/base/a&b.qcow2"])
        let out = first.rewritten(name: name, disks: disks, logDirectory: "/clones", nvram: nil, lineage: lineage)
        guard let parsed = try? XMLTree.parse(out) else {
            return ["the clone's XML does not parse for name \(name.debugDescription)"]
        }
        var broken: [String] = []
        if parsed.child("name")?.text != name && reference.child("name") != nil {
            broken.append(
                "the clone's name reads back as \(parsed.child("name")?.text.debugDescription ?? "nil"), not \(name.debugDescription)"
            )
        }
        if parsed.child("uuid") != nil { broken.append("the clone kept the source's UUID") }
        if parsed.child("devices")?.children("interface").contains(where: { $0.child("mac") != nil }) == true {
            broken.append("the clone kept a MAC address")
        }
        if CloneDefinition.lineage(in: out) != lineage { broken.append("the clone's lineage does not read back") }
        // Nothing outside the name, UUID, disks, interfaces, character devices and metadata changes.
        let touched: Set<String> = ["name", "uuid", "devices", "metadata", "os"]
        for element in reference.children where !touched.contains(element.name) {
            let counterpart = parsed.children(element.name)
            if !counterpart.contains(where: { $0.serialized() == element.serialized() }) {
                broken.append("<\(element.name)> changed in the clone")
            }
        }
        // Rewriting a clone's definition the same way again changes nothing.
        if let second = try? CloneDefinition(sourceXML: out) {
            let twice = second.rewritten(name: name, disks: disks, logDirectory: "/clones", nvram: nil, lineage: lineage)
            if canonical(twice) != canonical(out) {
                broken.append("the clone rewrite is not idempotent: \(firstDifference(out, twice))")
            }
        }
        return broken
    }

    static func migrationRewrite(_ xml: String, name: String) -> [String] {
        guard let reference = try? XMLTree.parse(xml) else { return [] }
        var options = MigrationOptions()
        options.newName = name
        options.memoryMiB = 512
        options.vcpus = 2
        let moves = (reference.child("devices")?.children("disk") ?? []).compactMap { disk -> DiskMove? in
            guard let file = disk.child("source")?.attributes["file"] else { return nil }
            let layout = DiskLayout.Disk(
                target: disk.child("target")?.attributes["dev"] ?? "", path: file, format: "qcow2", chain: [])
            return DiskMove(disk: layout, mode: .copy, targetPath: "/home&'<>/\(PathName.last(file))", capacity: 0)
        }
        guard let out = MigrationPlan.rewrite(xml, moves: moves, options: options, settings: true, rename: true) else {
            return ["the migration rewrite refused XML that parses"]
        }
        guard let parsed = try? XMLTree.parse(out) else { return ["the migration rewrite does not parse"] }
        var broken: [String] = []
        if reference.child("name") != nil && parsed.child("name")?.text != name {
            broken.append("the migrated name reads back as \(parsed.child("name")?.text.debugDescription ?? "nil")")
        }
        let files = (parsed.child("devices")?.children("disk") ?? []).compactMap { $0.child("source")?.attributes["file"] }
        for move in moves where !files.contains(move.targetPath) {
            broken.append("disk \(move.disk.target) does not point at \(move.targetPath)")
        }
        let touched: Set<String> = ["name", "devices", "memory", "currentMemory", "vcpu"]
        for element in reference.children where !touched.contains(element.name) {
            if !parsed.children(element.name).contains(where: { $0.serialized() == element.serialized() }) {
                broken.append("<\(element.name)> changed in the migration rewrite")
            }
        }
        // Idempotent: the moved disks no longer match their source paths, the settings are set.
        if let twice = MigrationPlan.rewrite(out, moves: moves, options: options, settings: true, rename: true),
            canonical(twice) != canonical(out)
        {
            broken.append("the migration rewrite is not idempotent: \(firstDifference(out, twice))")
        }
        return broken
    }

    /// A document as XMLTree reads and writes it: attributes sorted (their order means nothing
    /// in XML, and a rewrite appends the ones it adds).
    static func canonical(_ xml: String) -> String { (try? XMLTree.parse(xml).serialized()) ?? xml }

    /// The first line where two documents differ, for messages.
    static func firstDifference(_ a: String, _ b: String) -> String {
        let (left, right) = (a.split(separator: "\n"), b.split(separator: "\n"))
        for (x, y) in zip(left, right) where x != y { return "\(x) ≠ \(y)" }
        return "\(left.count) lines ≠ \(right.count) lines"
    }

    static let sampleDomain = """
        <domain type='qemu'>
          <name>web</name>
          <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
          <metadata><app:x xmlns:app='https://example.org/app'>keep &amp; me</app:x></metadata>
          <memory unit='KiB'>262144</memory>
          <currentMemory unit='KiB'>262144</currentMemory>
          <vcpu placement='static'>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type><kernel>/boot/k</kernel><cmdline>console=ttyS0 tag=a&amp;b</cmdline></os>
          <features><acpi/></features>
          <on_crash>destroy</on_crash>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='/var/lib/libvirt/images/web-vda.qcow2'/>
              <backingStore type='file'><format type='qcow2'/><source file='/var/lib/libvirt/images/base.qcow2'/></backingStore>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='file' device='cdrom'>
              <source file='/iso/install &amp; go.iso'/>
              <target dev='sda' bus='sata'/>
              <readonly/>
            </disk>
            <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>
            <serial type='file'><source path='/var/log/web-serial.log' append='on'/><target port='0'/></serial>
            <console type='file'><source path='/var/log/web-serial.log'/><target type='serial' port='0'/></console>
          </devices>
        </domain>
        """
}
