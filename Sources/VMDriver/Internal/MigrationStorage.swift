import Foundation
import Libvirt
import Synchronization

/// How one disk travels in a migration, and where it lands.
struct DiskMove: Sendable {
    enum Mode: String, Sendable {
        /// Storage both hosts see: stays where it is.
        case shared
        /// Copied whole (a linked clone arrives flattened).
        case copy
        /// Only the top image is copied; the target has an identical backing chain.
        case incremental
    }

    var disk: DiskLayout.Disk
    var mode: Mode
    /// The image's path on the target (the same path, or in the target home).
    var targetPath: String
    /// Virtual size in bytes.
    var capacity: UInt64
}

/// Disk images across two hosts, through libvirt's storage API.
enum MigrationStorage {
    /// Whether `path` on the source and the same path on the target hold the same bytes. nil
    /// when the target has no such image. Reads both images through their hosts' storage pools
    /// (a local source without a pool: the file); blocking.
    static func sameImage(_ path: String, source: Connection, sourceIsLocal: Bool, target: Connection) throws -> Bool? {
        guard let theirs = try? ImageInspector.volume(at: path, connection: target) else { return nil }
        let ours: ByteReader
        if let volume = try? ImageInspector.volume(at: path, connection: source) {
            ours = try VolumeReader(volume)
        } else if sourceIsLocal, let file = FileHandle(forReadingAtPath: path) {
            ours = FileReader(file)
        } else {
            throw VMDriverError(
                .notSupported,
                "cannot read \(path) on the source to compare it with the target's: define a storage pool for its folder")
        }
        if try theirs.info().capacity != (try? source.lookupStorageVolume(path: path).info().capacity) ?? theirs.info().capacity {
            return false
        }
        return try equal(ours, try VolumeReader(theirs))
    }

    /// Compares two byte sequences, holes reading as zeros.
    static func equal(_ a: ByteReader, _ b: ByteReader) throws -> Bool {
        while true {
            let left = try a.peek()
            let right = try b.peek()
            switch (left, right) {
            case (.end, .end): return true
            case (.end, _), (_, .end):
                // One is longer: images of different sizes are different.
                return false
            case (.zeros(let x), .zeros(let y)):
                let n = min(x, y)
                a.consume(n)
                b.consume(n)
            case (.data(let bytes), .zeros(let count)), (.zeros(let count), .data(let bytes)):
                let n = min(bytes.count, count)
                if !isZero(UnsafeRawBufferPointer(rebasing: bytes.prefix(n))) { return false }
                a.consume(n)
                b.consume(n)
            case (.data(let x), .data(let y)):
                let n = min(x.count, y.count)
                if memcmp(x.base.baseAddress! + x.startIndex, y.base.baseAddress! + y.startIndex, n) != 0 { return false }
                a.consume(n)
                b.consume(n)
            }
        }
    }

    /// Whether every byte is zero: the first is, and each equals the next (one memcmp).
    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        return base.load(as: UInt8.self) == 0 && memcmp(base, base + 1, bytes.count - 1) == 0
    }

    /// Copies a volume's file from one host to another through this process (sparse). Blocking.
    static func copyFile(from source: StorageVolume, to target: StorageVolume) throws {
        let download = try Libvirt.Stream(connection: source.connection)
        let upload = try Libvirt.Stream(connection: target.connection)
        try source.download(into: download, sparse: true)
        try target.upload(from: upload, sparse: true)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        do {
            loop: while true {
                switch try download.read(into: buffer, sparse: true) {
                case .end: break loop
                case .hole(let length): try upload.writeHole(length)
                case .data(let count): try upload.write(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                }
            }
            try download.finish()
            try upload.finish()
        } catch {
            download.abort()
            upload.abort()
            throw error
        }
    }
}

extension MigrationStorage {
    /// Uploads a local file into a volume, runs of zeros as holes. Blocking.
    static func upload(localFile path: String, to target: StorageVolume) throws {
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw VMDriverError(.failed, "cannot read \(path)")
        }
        defer { try? file.close() }
        let upload = try Libvirt.Stream(connection: target.connection)
        try target.upload(from: upload, sparse: true)
        do {
            while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty {
                if chunk.allSatisfy({ $0 == 0 }) {
                    try upload.writeHole(Int64(chunk.count))
                } else {
                    try chunk.withUnsafeBytes { bytes in try upload.write(bytes) }
                }
            }
            try upload.finish()
        } catch {
            upload.abort()
            throw error
        }
    }
}

/// A sequence of bytes read in pieces; holes come as runs of zeros.
class ByteReader {
    enum Piece {
        case data(Slice<UnsafeRawBufferPointer>)
        case zeros(Int)
        case end
    }

    /// The next piece, without consuming it.
    func peek() throws -> Piece { .end }
    /// Consumes `count` bytes of the current piece.
    func consume(_ count: Int) {}
}

/// Reads a volume through a sparse download stream.
final class VolumeReader: ByteReader {
    private let stream: Libvirt.Stream
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var start = 0
    private var count = 0
    private var hole: Int64 = 0
    private var ended = false

    init(_ volume: StorageVolume) throws {
        stream = try Libvirt.Stream(connection: volume.connection)
        try volume.download(into: stream, sparse: true)
    }

    deinit {
        stream.abort()
        buffer.deallocate()
    }

    override func peek() throws -> Piece {
        while !ended && hole == 0 && start == count {
            switch try stream.read(into: buffer, sparse: true) {
            case .end:
                ended = true
                try? stream.finish()
            case .hole(let length): hole = length
            case .data(let n): (start, count) = (0, n)
            }
        }
        if hole > 0 { return .zeros(Int(min(hole, Int64(Int.max)))) }
        if start < count { return .data(UnsafeRawBufferPointer(buffer)[start..<count]) }
        return .end
    }

    override func consume(_ n: Int) {
        if hole > 0 { hole -= Int64(n) } else { start += n }
    }
}

/// Reads a local file.
final class FileReader: ByteReader {
    private let file: FileHandle
    private var data = Data()
    private var start = 0
    private var ended = false
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var count = 0

    init(_ file: FileHandle) { self.file = file }

    deinit {
        try? file.close()
        buffer.deallocate()
    }

    override func peek() throws -> Piece {
        if start == count && !ended {
            let chunk = try file.read(upToCount: buffer.count) ?? Data()
            if chunk.isEmpty {
                ended = true
            } else {
                chunk.copyBytes(to: buffer)
                (start, count) = (0, chunk.count)
            }
        }
        return start < count ? .data(UnsafeRawBufferPointer(buffer)[start..<count]) : .end
    }

    override func consume(_ n: Int) { start += n }
}

/// What VMDriver makes on the target before a migration (the home folder, disk images), so
/// it can take it away again if the migration does not complete.
final class TargetPreparation: Sendable {
    private struct State {
        var images: [String] = []
        var homePool: StoragePool?
        var madeHome = false
    }

    private let state = Mutex(State())
    let target: Host

    init(target: Host) { self.target = target }

    /// Makes `home` on the target if it is not there, through a transient directory pool
    /// (which then covers it, so images can be created in it). Code 4 when it cannot be made.
    func makeHome(_ home: String) async throws(VMDriverError) {
        let created = try await target.blocking("cannot prepare \(home) on \(target.label)") { connection in
            if (try? StoragePools.covering(home, connection: connection)) != nil { return (StoragePool?.none, false) }
            let name = "vmdriver-home-\(UUID().uuidString.prefix(8).lowercased())"
            let xml = XMLTree(name: "pool", attributes: ["type": "dir"])
            xml.append("name", text: name)
            xml.append("target").append("path", text: home)
            // A pool over a folder that exists starts without a build; otherwise the build
            // makes it (with its parents), and a failed migration takes it away again.
            if let pool = try? connection.createStoragePool(xml: xml.serialized()) { return (pool, false) }
            do {
                return (try connection.createStoragePool(xml: xml.serialized(), build: true), true)
            } catch let error as LibvirtError {
                throw VMDriverError(
                    .invalidParameter, "cannot make the home folder \(home) on \(self.target.label): \(error.message)",
                    cause: error)
            }
        }
        state.withLock {
            $0.homePool = created.0
            $0.madeHome = created.1
        }
    }

    /// Creates the target's image for each copied disk, sparse: an empty qcow2 (or raw) of the
    /// disk's size for a full copy, an overlay over the identical base for an incremental one.
    func createImages(_ moves: [DiskMove]) async throws(VMDriverError) {
        for move in moves where move.mode != .shared {
            try await target.blocking("cannot create \(move.targetPath) on \(target.label)") { connection in
                let folder = (move.targetPath as NSString).deletingLastPathComponent
                guard let pool = try StoragePools.covering(folder, connection: connection) else {
                    throw VMDriverError(
                        .incompatibleParameters, "\(self.target.label) has no storage pool covering \(folder): define one")
                }
                if move.mode == .incremental, let base = move.disk.chain.first {
                    try StoragePools.createOverlay(
                        move.targetPath, base: base.path, baseFormat: base.format ?? "qcow2", pool: pool, connection: connection)
                } else {
                    let format = move.disk.format == "raw" ? "raw" : "qcow2"
                    let volume = XMLTree(name: "volume")
                    volume.append("name", text: (move.targetPath as NSString).lastPathComponent)
                    volume.append("capacity", attributes: [("unit", "bytes")], text: String(move.capacity))
                    volume.append("allocation", attributes: [("unit", "bytes")], text: "0")
                    let target = volume.append("target")
                    target.append("format", attributes: [("type", format)])
                    target.append("permissions").append("mode", text: "0600")
                    _ = try pool.createVolume(xml: volume.serialized())
                }
            }
            state.withLock { $0.images.append(move.targetPath) }
        }
    }

    /// Records an image made on the target by other means (a cold copy).
    func made(_ path: String) { state.withLock { $0.images.append(path) } }

    /// Takes away what was made. Best effort: it runs after a failure.
    func rollback() async {
        let (images, pool, madeHome) = state.withLock { ($0.images, $0.homePool, $0.madeHome) }
        try? await target.blocking("", evenIfCancelled: true) { connection in
            for image in images.reversed() { try? ImageInspector.volume(at: image, connection: connection).delete() }
            if let pool {
                if madeHome { try? pool.delete() }
                try? pool.destroy()
            }
        }
        state.withLock { $0 = State() }
    }

    /// Keeps what was made; the transient pool goes (the folder and images stay).
    func commit() async {
        let pool = state.withLock { $0.homePool }
        if let pool { try? await target.blocking("", evenIfCancelled: true) { _ in try? pool.destroy() } }
        state.withLock { $0 = State() }
    }
}
