import Foundation

/// A clone's NoCloud seed: cloud-init's `meta-data`, `user-data` and `network-config` in an ISO
/// 9660 image labelled `cidata`, attached as a read-only CD-ROM (cloud-init's NoCloud
/// datasource finds it by its label). The image is made on this machine with genisoimage (or
/// xorriso's mkisofs) and written to the host through its storage seam, so a remote host's
/// clone gets it there.
struct NoCloudSeed: Sendable {
    /// VMDriver's record of the seed in the clone's `<metadata>`: which CD-ROM is the seed (a
    /// clone of the clone drops it, a delete with storage removes it).
    static let namespace = "https://vmdriver.dev/xmlns/seed/1.0"

    let instanceID: String
    let hostname: String
    let sshKeys: [String]
    let userData: String?
    let networkConfig: String?

    init(cloneUUID: UUID, hostname: String, options: CloneOptions) {
        instanceID = "iid-\(cloneUUID.uuidString.lowercased())"
        self.hostname = hostname
        sshKeys = options.sshKeys.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        userData = options.userData
        networkConfig = options.networkConfig
    }

    /// The file name beside the clone's disks.
    static func fileName(clone: String) -> String { "\(clone)-cidata.iso" }

    /// The ISO builder on this machine: genisoimage, else xorriso in its mkisofs mode.
    static func builder() -> (tool: String, prefix: [String])? {
        if let genisoimage = Subprocess.which("genisoimage") { return (genisoimage, []) }
        if let xorriso = Subprocess.which("xorriso") { return (xorriso, ["-as", "mkisofs"]) }
        return nil
    }

    static var support: Capabilities.Support {
        let builder = builder()
        return .when(
            builder != nil, "NoCloud seed ISOs made with \(builder.map { PathName.last($0.tool) } ?? "")",
            else: "a cloud-init seed is an ISO 9660 image and neither genisoimage nor xorriso is installed on this machine "
                + "(apt-get install genisoimage)")
    }

    /// cloud-init's meta-data (YAML; the keys' strings JSON-quoted, which YAML reads as they are).
    var metaData: String {
        var text = "instance-id: \(instanceID)\nlocal-hostname: \(hostname)\n"
        if !sshKeys.isEmpty {
            text += "public-keys:\n"
            for key in sshKeys { text += "  - \(Self.quoted(key))\n" }
        }
        return text
    }

    static func quoted(_ text: String) -> String {
        // A single string encodes as a JSON string literal: escaped quotes, backslashes and
        // control characters, which YAML's double-quoted style reads back unchanged.
        // Slashes unescaped: `\/` is not an escape YAML 1.1 (PyYAML, cloud-init's) knows.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Makes the image. Blocking: call from the pool; `handle` stops the builder.
    func image(handle: Subprocess.Handle) throws(VMDriverError) -> Data {
        guard let builder = Self.builder() else {
            throw VMDriverError(.notSupported, Self.support.reason ?? "no ISO builder")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-seed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var files = [("meta-data", metaData), ("user-data", userData ?? "#cloud-config\n")]
        if let networkConfig { files.append(("network-config", networkConfig)) }
        do {
            try FileManager.default.createDirectory(
                at: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            for (name, text) in files {
                try Data(text.utf8).write(to: folder.appendingPathComponent(name))
            }
        } catch {
            throw VMDriverError(
                .failed, "cannot write the cloud-init seed's files in \(folder.path): \(error.localizedDescription)")
        }
        let output = folder.appendingPathComponent("seed.iso").path
        let arguments =
            builder.prefix + ["-output", output, "-volid", "cidata", "-joliet", "-rock", "-input-charset", "utf-8", "-quiet"]
            + files.map { folder.appendingPathComponent($0.0).path }
        let result: Subprocess.Output
        do {
            result = try Subprocess.run(builder.tool, arguments, handle: handle)
        } catch {
            throw VMDriverError(.failed, "cannot run \(builder.tool): \(error)")
        }
        guard result.status == 0 else {
            throw VMDriverError(
                .failed,
                "\(PathName.last(builder.tool)) could not make the cloud-init seed (exit \(result.status)): \(result.stderr)")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: output))
        } catch {
            throw VMDriverError(.failed, "cannot read the cloud-init seed \(output): \(error.localizedDescription)")
        }
    }

    /// Where the seed's CD-ROM goes in a definition: on the bus the machine type gives one (IDE
    /// on i440fx, SATA on q35, SCSI elsewhere), under the first free device name (a seed the
    /// definition already has is replaced). Throws code 1 when the bus has no free unit.
    static func unit(in definition: String) throws(VMDriverError) -> (dev: String, bus: String) {
        guard let root = try? XMLTree.parse(definition) else {
            throw VMDriverError(.failed, "libvirt returned a domain definition VMDriver cannot read")
        }
        detach(from: root)
        let used = Set((root.child("devices")?.children("disk") ?? []).compactMap { $0.child("target")?.attributes["dev"] })
        let machine = root.child("os")?.child("type")?.attributes["machine"] ?? ""
        let arch = root.child("os")?.child("type")?.attributes["arch"] ?? "x86_64"
        let bus = machine.contains("q35") ? "sata" : ["x86_64", "i686"].contains(arch) ? "ide" : "scsi"
        // IDE's secondary master (hdc) first, where CD-ROMs usually are.
        let order =
            bus == "ide" ? ["hdc", "hdd", "hdb", "hda"] : "abcdefghijklmnopqrstuvwxyz".map { "sd\($0)" }
        guard let dev = order.first(where: { !used.contains($0) }) else {
            throw VMDriverError(.notSupported, "the clone has no free \(bus.uppercased()) unit for its cloud-init seed's CD-ROM")
        }
        return (dev, bus)
    }

    /// Attaches the seed at `path` to a domain definition as a read-only CD-ROM at `unit`, and
    /// records it in `<metadata>`.
    func attach(path: String, unit: (dev: String, bus: String), to root: XMLTree) {
        let devices = root.child("devices") ?? root.append("devices")
        let disk = devices.append("disk", attributes: [("type", "file"), ("device", "cdrom")])
        disk.append("driver", attributes: [("name", "qemu"), ("type", "raw")])
        disk.append("source", attributes: [("file", path)])
        disk.append("target", attributes: [("dev", unit.dev), ("bus", unit.bus)])
        disk.append("readonly")
        let metadata = root.child("metadata") ?? root.append("metadata")
        metadata.append(
            "vmdriver:seed",
            attributes: [("xmlns:vmdriver", Self.namespace), ("path", path), ("instance-id", instanceID), ("hostname", hostname)])
    }

    /// The seed a domain definition records, if any: its path and the instance-id it gave.
    static func recorded(in root: XMLTree) -> (path: String, instanceID: String?)? {
        guard
            let record = root.child("metadata")?.children.first(where: {
                $0.name.hasSuffix(":seed") && $0.attributes.values.contains(namespace)
            }), let path = record.attributes["path"]
        else { return nil }
        return (path, record.attributes["instance-id"])
    }

    /// Removes a recorded seed and its CD-ROM from a definition (a clone of a seeded VM is not
    /// given its source's identity).
    static func detach(from root: XMLTree) {
        guard let seed = recorded(in: root) else { return }
        root.child("devices")?.removeChildren { $0.name == "disk" && $0.child("source")?.attributes["file"] == seed.path }
        root.child("metadata")?.removeChildren { $0.name.hasSuffix(":seed") && $0.attributes.values.contains(namespace) }
    }
}
