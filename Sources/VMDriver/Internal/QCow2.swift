import Foundation

/// Reads what VMDriver needs from a local qcow2 image's header (format, backing file and its
/// format, whether the image holds data of its own) without starting `qemu-img`: a linked clone
/// asks these questions several times, and each `qemu-img` run costs more than the clone's own
/// work. Anything this reader does not fully understand (another format, an unknown
/// incompatible feature, an external data file, a backing file given as a JSON or protocol
/// spec, a backing file without a recorded format) answers `nil`, and the caller asks
/// `qemu-img` instead. The layout is QEMU's docs/interop/qcow2.txt.
struct QCow2Header: Equatable {
    var version: UInt32
    var virtualSize: UInt64
    var clusterBits: UInt32
    var l1Size: UInt32
    var l1TableOffset: UInt64
    /// As written in the header (may be relative to the image's folder).
    var backingFile: String?
    /// The backing file's format, from the header extension; nil when the header has none.
    var backingFormat: String?

    static let magic: UInt32 = 0x5146_49fb
    /// Incompatible feature bits this reader understands: dirty (0), corrupt (1, refused
    /// below), external data file (2, refused below), compression type (3), extended L2 (4).
    private static let knownIncompatible: UInt64 = 0b11111
    private static let dataFileBit: UInt64 = 1 << 2
    private static let corruptBit: UInt64 = 1 << 1

    /// The header of the qcow2 image at `path`, or nil if it is not a qcow2 image this reader
    /// understands (or cannot be read).
    static func read(path: String) -> QCow2Header? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        return read(file)
    }

    private static func read(_ file: FileHandle) -> QCow2Header? {
        guard let head = try? file.read(upToCount: 4096), head.count >= 72 else { return nil }
        return parse(head)
    }

    /// Parses a header from the first bytes of an image (4 KiB hold every header QEMU writes).
    static func parse(_ head: Data) -> QCow2Header? {
        let bytes = [UInt8](head)
        func be32(_ at: Int) -> UInt32? {
            guard at >= 0, at + 4 <= bytes.count else { return nil }
            return bytes[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }
        func be64(_ at: Int) -> UInt64? {
            guard at >= 0, at + 8 <= bytes.count else { return nil }
            return bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) }
        }
        guard be32(0) == magic, let version = be32(4), version == 2 || version == 3,
            let backingOffset = be64(8), let backingSize = be32(16), let clusterBits = be32(20),
            (9...21).contains(clusterBits), let size = be64(24), let crypt = be32(32), crypt == 0,
            let l1Size = be32(36), let l1Offset = be64(40)
        else { return nil }
        var headerLength = 72
        if version == 3 {
            guard let incompatible = be64(72), let length = be32(100), length >= 104, Int(length) <= bytes.count,
                incompatible & ~knownIncompatible == 0, incompatible & (dataFileBit | corruptBit) == 0
            else { return nil }
            headerLength = Int(length)
        }
        var backingFile: String?
        if backingOffset != 0 {
            guard backingSize > 0, backingSize <= 1023, backingOffset + UInt64(backingSize) <= UInt64(bytes.count),
                let name = String(bytes: bytes[Int(backingOffset)..<Int(backingOffset) + Int(backingSize)], encoding: .utf8),
                !name.contains("\0")
            else { return nil }
            backingFile = name
        }
        // Header extensions: type, length, data padded to 8 bytes; type 0 ends them.
        var backingFormat: String?
        var at = headerLength
        while true {
            guard let type = be32(at), let length = be32(at + 4) else { return nil }
            if type == 0 { break }
            let start = at + 8
            guard start + Int(length) <= bytes.count else { return nil }
            switch type {
            case 0xE279_2ACA:
                backingFormat = String(bytes: bytes[start..<start + Int(length)], encoding: .utf8)
            case 0x4441_5441:
                return nil  // an external data file
            default:
                break
            }
            at = start + (Int(length) + 7) / 8 * 8
        }
        return QCow2Header(
            version: version, virtualSize: size, clusterBits: clusterBits, l1Size: l1Size, l1TableOffset: l1Offset,
            backingFile: backingFile, backingFormat: backingFormat)
    }

    /// The backing file's path as QEMU opens it: a relative name is taken from the image's
    /// folder. Nil for a JSON or protocol spec (`json:{…}`, `nbd://…`), which only QEMU reads.
    func backingPath(relativeTo image: String) -> String? {
        guard let backingFile else { return nil }
        if backingFile.hasPrefix("json:") || backingFile.contains("://") { return nil }
        if backingFile.hasPrefix("/") { return backingFile }
        return (image as NSString).deletingLastPathComponent + "/" + backingFile
    }

    /// Whether the qcow2 image at `path` maps no cluster of its own: every L1 entry is empty,
    /// so every read falls through to the backing file. An image somebody wrote to, or zeroed
    /// or discarded data in, has L2 tables and answers false. Nil if it is not an image this
    /// reader understands or its table cannot be read. Header and table come from one open.
    static func mapsNothing(path: String) -> Bool? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        guard let header = read(file), header.l1Size <= 1 << 22 else { return nil }
        if header.l1Size == 0 { return true }
        let length = Int(header.l1Size) * 8
        do {
            try file.seek(toOffset: header.l1TableOffset)
            guard let table = try file.read(upToCount: length), table.count == length else { return nil }
            // Bits 9–55 hold an L2 table's offset; 0 means the range was never written.
            let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
            return table.withUnsafeBytes { raw in
                stride(from: 0, to: raw.count, by: 8).allSatisfy { at in
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) & offsetMask == 0
                }
            }
        } catch {
            return nil
        }
    }

    /// Format and backing chain (nearest first) of the local image at `path`, read from the
    /// headers alone; nil when any image in it is one this reader leaves to `qemu-img`.
    static func chain(of path: String) -> (format: String, chain: [VMDetails.BackingImage])? {
        guard var header = read(path: path) else { return nil }
        var chain: [VMDetails.BackingImage] = []
        var current = path
        var seen: Set<String> = [path]
        while header.backingFile != nil {
            guard let next = header.backingPath(relativeTo: current), let format = header.backingFormat,
                seen.insert(next).inserted, chain.count < 64
            else { return nil }
            chain.append(VMDetails.BackingImage(path: next, format: format))
            switch format {
            case "qcow2":
                guard let below = read(path: next) else { return nil }
                header = below
                current = next
            case "raw":
                // A raw image has no header and no backing file; it must exist to be a chain.
                guard FileManager.default.fileExists(atPath: next) else { return nil }
                return ("qcow2", chain)
            default:
                return nil
            }
        }
        return ("qcow2", chain)
    }
}
