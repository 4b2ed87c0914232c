import Foundation

/// Writes an empty qcow2 (version 3) overlay over a backing image, as `qemu-img create -f qcow2
/// -b BASE -F FORMAT` would, without starting `qemu-img`: starting it costs several times what
/// the overlay's few kilobytes of metadata do, and a linked clone is that overlay plus one
/// define. The image is the smallest one QEMU itself makes: 64 KiB clusters, a header cluster
/// (header, the backing format extension, the backing file's name), one refcount table
/// cluster, one refcount block (16-bit refcounts) and an L1 table of empty entries, nothing
/// else. QEMU's docs/interop/qcow2.txt is the layout; `qemu-img check` finds nothing to say.
extension QCow2Header {
    static let overlayClusterBits: UInt32 = 16

    /// The overlay's bytes that are not zero, at their offsets, and the file's length (the rest
    /// is zero: a hole). Nil when the overlay is one this writer leaves to `qemu-img` (an empty or
    /// enormous size, a backing name QEMU would not store in the header cluster).
    static func overlayLayout(virtualSize: UInt64, backingFile: String, backingFormat: String)
        -> (chunks: [(offset: UInt64, bytes: [UInt8])], length: UInt64)?
    {
        let cluster = UInt64(1) << overlayClusterBits
        // 512-byte sectors, as QEMU rounds an image's size.
        let size = (virtualSize + 511) / 512 * 512
        let name = Array(backingFile.utf8)
        let format = Array(backingFormat.utf8)
        // One L2 table maps cluster/8 clusters; the L1 table holds one entry per L2 table.
        let l2Span = cluster * (cluster / 8)
        guard size > 0, size <= 1 << 50, !name.isEmpty, name.count <= 1023, !name.contains(0),
            !format.isEmpty, format.count <= 16
        else { return nil }
        let l1Size = (size + l2Span - 1) / l2Span
        let l1Clusters = (l1Size * 8 + cluster - 1) / cluster
        let refcountTable = cluster
        let refcountBlock = 2 * cluster
        let l1Table = 3 * cluster
        let clusters = 3 + l1Clusters  // every cluster in use, each with refcount 1

        var header = [UInt8]()
        func be(_ value: UInt64, _ bytes: Int) {
            for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) {
                header.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        let headerLength: UInt64 = 112
        // The backing format extension, then the end of the extensions, then the name.
        let extensionLength = 8 + (UInt64(format.count) + 7) / 8 * 8 + 8
        let nameOffset = headerLength + extensionLength
        be(UInt64(magic), 4)
        be(3, 4)  // version
        be(nameOffset, 8)
        be(UInt64(name.count), 4)
        be(UInt64(overlayClusterBits), 4)
        be(size, 8)
        be(0, 4)  // no encryption
        be(l1Size, 4)
        be(l1Table, 8)
        be(refcountTable, 8)
        be(1, 4)  // refcount table clusters
        be(0, 4)  // snapshots
        be(0, 8)  // snapshots offset
        be(0, 8)  // incompatible features
        be(0, 8)  // compatible features
        be(0, 8)  // autoclear features
        be(4, 4)  // refcount order: 16-bit refcounts
        be(headerLength, 4)
        be(0, 1)  // compression type: zlib
        header += [UInt8](repeating: 0, count: Int(headerLength) - header.count)
        be(0xE279_2ACA, 4)  // backing file format name
        be(UInt64(format.count), 4)
        header += format + [UInt8](repeating: 0, count: (8 - format.count % 8) % 8)
        be(0, 8)  // end of the extensions
        header += name

        var refcounts = [UInt8]()
        for _ in 0..<clusters { refcounts += [0, 1] }
        let tableEntry = (0..<8).map { UInt8(truncatingIfNeeded: refcountBlock >> UInt64(56 - 8 * $0)) }
        return (
            [(0, header), (refcountTable, tableEntry), (refcountBlock, refcounts)],
            l1Table + l1Size * 8
        )
    }

    /// Writes an empty overlay of `base` into `path`, a file that exists and is empty (reserved by
    /// the caller, mode kept), and makes it durable. The overlay's size is the base's. False,
    /// having written nothing, when this writer leaves the overlay to `qemu-img`: a base it cannot
    /// size from its header (or a raw base from its length), or a layout it does not make.
    static func writeOverlay(at path: String, base: String, baseFormat: String) throws(VMDriverError) -> Bool {
        let virtualSize: UInt64
        switch baseFormat {
        case "qcow2":
            guard let header = read(path: base) else { return false }
            virtualSize = header.virtualSize
        case "raw":
            var info = stat()
            guard stat(base, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
            virtualSize = UInt64(info.st_size)
        default:
            return false
        }
        guard let layout = overlayLayout(virtualSize: virtualSize, backingFile: base, backingFormat: baseFormat)
        else { return false }
        let descriptor = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            throw VMDriverError(.failed, "cannot open \(path) to write the overlay: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        func fail(_ doing: String) -> VMDriverError {
            VMDriverError(.failed, "cannot \(doing) the overlay \(path): \(String(cString: strerror(errno)))")
        }
        for chunk in layout.chunks {
            let written = chunk.bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(chunk.offset)) }
            guard written == chunk.bytes.count else { throw fail("write") }
        }
        guard ftruncate(descriptor, off_t(layout.length)) == 0 else { throw fail("size") }
        guard fdatasync(descriptor) == 0 else { throw fail("flush") }
        return true
    }
}
