import Foundation
internal import Libvirt
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
    /// Backing images the target lacks, copied there file for file before the move (deepest
    /// first), so a chain that snapshots rest on arrives whole and only the top image moves.
    var seed: [String] = []
}

/// Disk images across two hosts, through libvirt's storage API.
enum MigrationStorage {
    /// Whether `path` on the source and the same path on the target hold the same bytes, and
    /// whether that was known without reading either (`ImageDigests`: both digests recorded,
    /// equal, and both images unchanged since; host UUIDs given). nil when the target has no
    /// such image. Images compared and found equal share a digest from then on: the one either
    /// already had (nothing is hashed while comparing), or a new identity for the pair. Blocking.
    static func sameImage(
        _ path: String, source: any HostStorage, target: Connection, hosts: (source: String, target: String)? = nil
    ) throws -> (same: Bool, known: Bool)? {
        guard let theirs = try? ImageInspector.volume(at: path, connection: target) else { return nil }
        let (ours, volume) = try source.reader(path)
        // Different virtual sizes: different images, without reading them.
        if let volume, try volume.info().capacity != theirs.info().capacity { return (false, false) }
        var prints: [String] = []
        var recorded: String?
        if let hosts, let volume, let sourcePrint = ImageDigests.fingerprint(of: volume, host: hosts.source),
            let targetPrint = ImageDigests.fingerprint(of: theirs, host: hosts.target)
        {
            let (ourDigest, theirDigest) = (ImageDigests.digest(sourcePrint), ImageDigests.digest(targetPrint))
            if let ourDigest, ourDigest == theirDigest { return (true, true) }
            prints = [sourcePrint, targetPrint]
            recorded = ourDigest ?? theirDigest
        }
        let same = try equal(ours, try VolumeReader(theirs))
        if same && !prints.isEmpty { ImageDigests.record(recorded ?? ImageDigests.newIdentity(), for: prints) }
        return (same, false)
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

    /// Writes what `reader` reads into a volume (through this process), holes and runs of
    /// zeros as holes. Blocking.
    static func send(_ reader: ByteReader, to target: StorageVolume) throws {
        let upload = try Libvirt.Stream(connection: target.connection)
        try target.upload(from: upload, sparse: true)
        do {
            loop: while true {
                switch try reader.peek() {
                case .end: break loop
                case .zeros(let count):
                    try upload.writeHole(Int64(count))
                    reader.consume(count)
                case .data(let bytes):
                    let chunk = UnsafeRawBufferPointer(rebasing: bytes)
                    if isZero(chunk) { try upload.writeHole(Int64(chunk.count)) } else { try upload.write(chunk) }
                    reader.consume(chunk.count)
                }
            }
            try upload.finish()
        } catch {
            upload.abort()
            throw error
        }
    }
}

/// A piece of a byte sequence.
enum BytePiece {
    case data(Slice<UnsafeRawBufferPointer>)
    case zeros(Int)
    case end
}

/// A sequence of bytes read in pieces; holes come as runs of zeros.
protocol ByteReader: AnyObject {
    /// The next piece, without consuming it.
    func peek() throws -> BytePiece
    /// Consumes `count` bytes of the current piece.
    func consume(_ count: Int)
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

    func peek() throws -> BytePiece {
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

    func consume(_ n: Int) {
        if hole > 0 { hole -= Int64(n) } else { start += n }
    }
}

/// Reads a local file.
final class FileReader: ByteReader {
    private let file: FileHandle
    private var start = 0
    private var ended = false
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var count = 0

    init(_ file: FileHandle) { self.file = file }

    deinit {
        try? file.close()
        buffer.deallocate()
    }

    func peek() throws -> BytePiece {
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

    func consume(_ n: Int) { start += n }
}

/// What VMDriver makes on the target before a migration (the home folder, transient pools over
/// folders no pool covers, disk images), so it can take it away again if the migration does not
/// complete, and so the operation's record lists it.
final class TargetPreparation: Sendable {
    private struct State {
        var images: [String] = []
        /// Transient pools made on the target (for --home, or for a folder no pool covers),
        /// and whether VMDriver made the folder too (a failed migration takes it away).
        var pools: [(pool: StoragePool, madeFolder: Bool)] = []
    }

    private let state = Mutex(State())
    private let changed = Mutex<(@Sendable (_ images: [String], _ pools: [OperationRecord.Pool]) async -> Void)?>(nil)
    let target: Host
    /// The source's and the target's UUIDs, for the digests of the files copied (`copyFile`);
    /// nil: none are recorded.
    let hostUUIDs: (source: String, target: String)?

    init(target: Host, hostUUIDs: (source: String, target: String)? = nil) {
        (self.target, self.hostUUIDs) = (target, hostUUIDs)
    }

    /// Calls `body` with everything made so far each time something is made (the operation's
    /// record lists it, so a later process can take it away if this one dies).
    func onChange(_ body: @escaping @Sendable (_ images: [String], _ pools: [OperationRecord.Pool]) async -> Void) {
        changed.withLock { $0 = body }
    }

    private func notify() async {
        guard let body = changed.withLock({ $0 }) else { return }
        let (images, pools) = state.withLock { state in
            (
                state.images,
                state.pools.compactMap { entry in
                    (try? entry.pool.name()).map { OperationRecord.Pool(name: $0, madeFolder: entry.madeFolder) }
                }
            )
        }
        await body(images, pools)
    }

    /// What another process made, as its record lists it, so `rollback()` takes it away: the
    /// images, and the transient pools that are still there. Blocking.
    func restore(images: [String], pools: [OperationRecord.Pool]) {
        let found = pools.compactMap { pool in
            (try? self.target.connection.lookupStoragePool(name: pool.name)).map { ($0, pool.madeFolder) }
        }
        state.withLock {
            $0.images = images
            $0.pools = found.map { (pool: $0.0, madeFolder: $0.1) }
        }
    }

    /// Makes `home` on the target if it is not there, through a transient directory pool
    /// (which then covers it, so images can be created in it). Code 4 when it cannot be made.
    func makeHome(_ home: String) async throws(VMDriverError) {
        let made = try await target.blocking("cannot prepare \(home) on \(target.label)") { connection in
            try self.cover(home, connection: connection, what: "the home folder")
        }
        if made { await notify() }
    }

    /// Makes sure a pool covers `folder` on the target, so images can be created in it: the
    /// host's own, or a transient one kept until the migration ends. A pool over a folder that
    /// exists starts without a build; otherwise the build makes it (with its parents), and a
    /// failed migration takes it away again. True when it made a pool. Code 4 when it cannot be
    /// made. Blocking.
    private func cover(_ folder: String, connection: Connection, what: String) throws -> Bool {
        if (try? StoragePools.covering(folder, connection: connection)) != nil { return false }
        let name = "vmdriver-target"
        if let pool = try? StoragePools.transientPool(for: folder, build: false, name: name, connection: connection) {
            state.withLock { $0.pools.append((pool, false)) }
            return true
        }
        do {
            let pool = try StoragePools.transientPool(for: folder, build: true, name: name, connection: connection)
            state.withLock { $0.pools.append((pool, true)) }
            return true
        } catch let error as LibvirtError {
            throw VMDriverError(
                .invalidParameter, "cannot make \(what) \(folder) on \(target.label): \(error.message)", cause: error)
        }
    }

    /// Copies the backing images a move lacks on the target (`DiskMove.seed`, deepest first) to
    /// the same paths there, file for file through the two hosts' storage APIs, sparse: their
    /// backing references stay right. Each is listed (and recorded) before its bytes move, so a
    /// failed or cancelled migration takes it away. `progress` gets each image as it starts.
    func seed(_ moves: [DiskMove], from source: Host, progress: (String) -> Void) async throws(VMDriverError) {
        var done: Set<String> = []
        for move in moves {
            for path in move.seed where !done.contains(path) {
                progress(path)
                try Task.checkCancellation(or: "copying \(path) to \(target.label)")
                try await copyFile(path, to: path, from: source)
                done.insert(path)
            }
        }
    }

    /// Creates the target's image for each copied disk, sparse: an empty qcow2 (or raw) of the
    /// disk's size for a full copy, an overlay over the identical base for an incremental one.
    /// Moves that seed their chain first are left for after the seeding (`seed`).
    func createImages(_ moves: [DiskMove]) async throws(VMDriverError) {
        for move in moves where move.mode != .shared {
            try await target.blocking("cannot create \(move.targetPath) on \(target.label)") { connection in
                let folder = PathName.parent(move.targetPath)
                _ = try self.cover(folder, connection: connection, what: "the folder")
                guard let pool = try StoragePools.covering(folder, connection: connection) else {
                    throw VMDriverError(.failed, "no storage pool covers \(folder) on \(self.target.label)")
                }
                if move.mode == .incremental, let base = move.disk.chain.first {
                    // The base is looked up through a pool too (it must exist there).
                    _ = try self.cover(PathName.parent(base.path), connection: connection, what: "the base's folder")
                    try StoragePools.createOverlay(
                        move.targetPath, base: base.path, baseFormat: base.format ?? "qcow2", pool: pool, connection: connection)
                } else {
                    _ = try StoragePools.createVolume(
                        named: PathName.last(move.targetPath), capacity: move.capacity,
                        format: move.disk.format == "raw" ? "raw" : "qcow2", in: pool)
                }
            }
            state.withLock { $0.images.append(move.targetPath) }
            await notify()
        }
    }

    /// Cold migrations: copies a disk's image file (the top image, for an incremental move)
    /// from the source to the target through the two hosts' storage APIs, sparse.
    func copyImage(_ move: DiskMove, from source: Host) async throws(VMDriverError) {
        try await copyFile(move.disk.path, to: move.targetPath, from: source)
    }

    /// Copies the file at `path` on the source to `targetPath` on the target, sparse.
    func copyFile(_ path: String, to targetPath: String, from source: Host) async throws(VMDriverError) {
        let target = self.target
        let targetFolder = folder(targetPath)
        // An empty raw file the upload fills; libvirt reads its format afresh after. Listed (and
        // recorded) before the bytes move, so a copy cut short is taken away.
        let (copy, pool) = try await target.blocking("cannot copy \(path) to \(target.label)") { connection in
            _ = try self.cover(targetFolder, connection: connection, what: "the folder")
            guard let pool = try StoragePools.covering(targetFolder, connection: connection) else {
                throw VMDriverError(.incompatibleParameters, "\(target.label) has no storage pool covering \(targetFolder)")
            }
            let copy = try StoragePools.createVolume(named: PathName.last(targetPath), capacity: 0, format: "raw", in: pool)
            self.state.withLock { $0.images.append(targetPath) }
            return (copy, pool)
        }
        await notify()
        let hosts = hostUUIDs
        try await source.blocking("cannot copy \(path) to \(target.label)", lane: .long) { _ in
            let (original, volume) = try source.storage.reader(path)
            let digesting = DigestingReader(original)
            try MigrationStorage.send(digesting, to: copy)
            try? pool.refresh()
            // Both copies' digest, from the bytes that went over: a later migration over this
            // pair compares nothing (ImageDigests). Only with both fingerprints.
            if let hosts, let volume, let sourcePrint = ImageDigests.fingerprint(of: volume, host: hosts.source),
                let targetPrint = ImageDigests.fingerprint(of: copy, host: hosts.target)
            {
                ImageDigests.record(digesting.finish(), for: [sourcePrint, targetPrint])
            }
        }
    }

    /// Takes away what was made. Best effort: it runs after a failure.
    @discardableResult
    func rollback() async -> [String] {
        let (images, pools) = state.withLock { ($0.images, $0.pools) }
        var left =
            (try? await target.blocking("", evenIfCancelled: true) { connection in
                Self.remove(images, connection: connection)
            }) ?? images
        if !pools.isEmpty {
            try? await target.blocking("", evenIfCancelled: true) { connection in
                // Newest first: a folder made inside another made one goes before it. libvirt
                // deletes only an inactive pool's folder, and a transient pool is gone once
                // stopped: a folder VMDriver made goes through a persistent twin, defined for
                // the moment (its parents, if the build made them, stay).
                for (pool, madeFolder) in pools.reversed() {
                    let xml = try? pool.xmlDescription()
                    try? pool.destroy()
                    if madeFolder, let xml, let twin = try? connection.defineStoragePool(xml: xml) {
                        try? twin.delete()
                        try? twin.undefine()
                    }
                }
            }
        }
        // The connection died with the fault (the target's libvirtd restarted, the link was
        // down): a new one, for as long as 30 s, so a half-copied image does not stay behind.
        // Not cancellable: a cancelled job still cleans up.
        if !left.isEmpty {
            let (uri, logger) = (target.uri, target.logger)
            left = await Task.detached { [left] in
                var left = left
                let deadline = ContinuousClock.now + .seconds(30)
                while !left.isEmpty && ContinuousClock.now < deadline {
                    if let host = try? await Host.connect(uri, logger: logger) {
                        left =
                            (try? await host.blocking("", evenIfCancelled: true) { [left] in Self.remove(left, connection: $0) })
                            ?? left
                        try? await host.close()
                    }
                    if !left.isEmpty { try? await Task.sleep(for: .seconds(2)) }
                }
                return left
            }.value
        }
        state.withLock { $0 = State() }
        return left
    }

    /// Deletes images through a connection; returns those still there (or that it could not
    /// tell about: the connection failed).
    private static func remove(_ images: [String], connection: Connection) -> [String] {
        images.reversed().filter { image in
            do {
                try ImageInspector.volume(at: image, connection: connection).delete()
                return false
            } catch let error as LibvirtError where error.code == .noStorageVolume {
                return false
            } catch {
                return true
            }
        }
    }

    /// Keeps what was made; the transient pools go (the folders and images stay).
    func commit() async {
        let pools = state.withLock { $0.pools.map(\.pool) }
        if !pools.isEmpty {
            try? await target.blocking("", evenIfCancelled: true) { _ in
                for pool in pools { try? pool.destroy() }
            }
        }
        state.withLock { $0 = State() }
    }
}
