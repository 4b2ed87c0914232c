import Foundation
internal import Libvirt

/// Reads a disk image's format and backing chain from the image itself: on this machine from
/// qcow2 headers directly (`QCow2Header`), else with `qemu-img info` (`LocalStorage`); through
/// libvirt's storage API, which reads the header on its own host (`RemoteStorage`).
enum ImageInspector {
    struct Result {
        var format: String?
        var chain: [VMDetails.BackingImage]?
        var note: String?
    }

    /// An image of this machine. Blocking: call from the pool.
    static func local(path: String, connection: Connection) -> Result {
        if let read = QCow2Header.chain(of: path) { return Result(format: read.format, chain: read.chain) }
        if let qemuImg = Subprocess.which("qemu-img") { return viaQemuImg(qemuImg, path: path) }
        return viaStorageAPI(path: path) { try Self.volume(at: $0, connection: connection).xmlDescription() }
    }

    private struct ImageInfo: Decodable {
        var filename: String
        var format: String?
    }

    private static func viaQemuImg(_ qemuImg: String, path: String) -> Result {
        // -U: read without taking QEMU's image lock, so a running VM's disk can be inspected.
        let output: Subprocess.Output
        do {
            output = try Subprocess.run(qemuImg, ["info", "-U", "--backing-chain", "--output=json", "--", path])
        } catch {
            return Result(note: "cannot run qemu-img: \(error)")
        }
        guard output.status == 0 else {
            return Result(note: output.stderr.isEmpty ? "qemu-img info failed" : output.stderr)
        }
        let infos: [ImageInfo]
        do {
            // One image gives an object, a chain an array.
            if let list = try? JSONDecoder().decode([ImageInfo].self, from: output.stdout) {
                infos = list
            } else {
                infos = [try JSONDecoder().decode(ImageInfo.self, from: output.stdout)]
            }
        } catch {
            return Result(note: "cannot read qemu-img's answer: \(error)")
        }
        return Result(
            format: infos.first?.format,
            chain: infos.dropFirst().map { VMDetails.BackingImage(path: $0.filename, format: $0.format) })
    }

    /// Walks the chain through libvirt's volume XML; `volumeXML` gives the XML of the volume at
    /// a path. Blocking.
    static func viaStorageAPI(path: String, volumeXML: (String) throws -> String) -> Result {
        var chain: [VMDetails.BackingImage] = []
        var current = path
        var format: String?
        var seen: Set<String> = []
        while seen.insert(current).inserted {
            let xml: String
            do {
                xml = try volumeXML(current)
            } catch {
                if current == path {
                    return Result(note: "no storage pool on the host covers \(path), so its image cannot be read remotely")
                }
                return Result(
                    format: format, chain: chain, note: "backing image \(current) is not in a storage pool; the chain stops there"
                )
            }
            guard let root = try? XMLTree.parse(xml) else {
                return Result(note: "libvirt returned unreadable volume XML for \(current)")
            }
            if current == path { format = root.child("target")?.child("format")?.attributes["type"] }
            guard let backing = root.child("backingStore"), let next = backing.child("path")?.trimmedText, !next.isEmpty
            else { break }
            chain.append(VMDetails.BackingImage(path: next, format: backing.child("format")?.attributes["type"]))
            current = next
        }
        return Result(format: format, chain: chain)
    }

    /// The volume at `path`; a pool that covers its folder but has not seen the file yet (it
    /// was made outside libvirt) is refreshed once.
    static func volume(at path: String, connection: Connection) throws -> StorageVolume {
        do {
            return try connection.lookupStorageVolume(path: path)
        } catch {
            guard let pool = try StoragePools.covering(PathName.parent(path), connection: connection)
            else { throw error }
            try pool.refresh()
            return try connection.lookupStorageVolume(path: path)
        }
    }
}
