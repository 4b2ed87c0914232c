import Foundation
import Libvirt
import Testing

@testable import VMDriver

/// The byte comparison behind incremental migration's base check.
struct MigrationStorageTests {
    func reader(_ bytes: [UInt8]) throws -> FileReader {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-cmp-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return FileReader(try FileHandle(forReadingFrom: url))
    }

    @Test func identicalBytesAreEqual() throws {
        let bytes = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try MigrationStorage.equal(try reader(bytes), try reader(bytes)))
    }

    @Test func oneByteDifferentIsDifferent() throws {
        var bytes = [UInt8](repeating: 7, count: 2_500_000)
        let original = bytes
        bytes[2_400_000] = 8
        #expect(try !MigrationStorage.equal(try reader(original), try reader(bytes)))
    }

    @Test func aLongerImageIsDifferent() throws {
        let bytes = [UInt8](repeating: 1, count: 1000)
        #expect(try !MigrationStorage.equal(try reader(bytes), try reader(bytes + [0])))
        #expect(try !MigrationStorage.equal(try reader([]), try reader([0])))
        #expect(try MigrationStorage.equal(try reader([]), try reader([])))
    }

    @Test func zeroCheck() {
        for count in [0, 1, 2, 4096, 1 << 20] {
            let zeros = [UInt8](repeating: 0, count: count)
            #expect(zeros.withUnsafeBytes { MigrationStorage.isZero($0) })
            if count > 0 {
                var last = zeros
                last[count - 1] = 1
                #expect(!last.withUnsafeBytes { MigrationStorage.isZero($0) })
                var first = zeros
                first[0] = 1
                #expect(!first.withUnsafeBytes { MigrationStorage.isZero($0) })
            }
        }
    }
}

/// The digest of an image's bytes, whatever its holes and however it is read.
struct ContentDigestTests {
    /// A reader of scripted pieces: data, or holes.
    final class Pieces: ByteReader {
        enum Piece {
            case data([UInt8])
            case hole(Int)
        }
        private var pieces: [Piece]
        private var buffer: UnsafeMutableRawBufferPointer?
        private var offset = 0

        init(_ pieces: [Piece]) { self.pieces = pieces }
        deinit { buffer?.deallocate() }

        func peek() throws -> BytePiece {
            guard let first = pieces.first else { return .end }
            switch first {
            case .hole(let count): return .zeros(count - offset)
            case .data(let bytes):
                if buffer == nil {
                    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
                    copy.copyBytes(from: bytes)
                    buffer = copy
                }
                return .data(UnsafeRawBufferPointer(buffer!)[offset..<bytes.count])
            }
        }

        func consume(_ count: Int) {
            offset += count
            let length: Int
            switch pieces[0] {
            case .hole(let n): length = n
            case .data(let bytes): length = bytes.count
            }
            if offset == length {
                pieces.removeFirst()
                buffer?.deallocate()
                (buffer, offset) = (nil, 0)
            }
        }
    }

    /// Reads everything, consuming each piece in bites of at most `bite` bytes.
    func digest(_ pieces: [Pieces.Piece], bite: Int = .max) throws -> String {
        let reader = DigestingReader(Pieces(pieces))
        loop: while true {
            switch try reader.peek() {
            case .end: break loop
            case .zeros(let count): reader.consume(min(count, bite))
            case .data(let bytes): reader.consume(min(bytes.count, bite))
            }
        }
        return reader.finish()
    }

    let block = ContentDigest.blockSize
    func pattern(_ count: Int, seed: Int = 1) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

    @Test func theSameBytesHaveTheSameDigestHoweverTheyAreSplitOrHoled() throws {
        let head = pattern(block + 1000)
        let tail = pattern(3 * block + 17, seed: 5)
        let zeros = 2 * block + 300
        let whole = try digest([.data(head + [UInt8](repeating: 0, count: zeros) + tail)])
        // The zeros as a hole, and as a hole in two pieces; the data in odd bites.
        #expect(try digest([.data(head), .hole(zeros), .data(tail)]) == whole)
        #expect(try digest([.data(head), .hole(700), .hole(zeros - 700), .data(tail)]) == whole)
        #expect(try digest([.data(head), .hole(zeros), .data(tail)], bite: 4093) == whole)
        #expect(
            try digest([.data(Array(head.prefix(10))), .data(Array(head.dropFirst(10))), .hole(zeros), .data(tail)]) == whole)
        // A hole that starts inside a block of data, and a file that ends in a hole.
        let endsInZeros = try digest([.data(head + [UInt8](repeating: 0, count: 5000))])
        #expect(try digest([.data(head), .hole(5000)]) == endsInZeros)
        #expect(try digest([.hole(4 * block)]) == digest([.data([UInt8](repeating: 0, count: 4 * block))]))
    }

    @Test func oneByteOrOneZeroMoreIsAnotherDigest() throws {
        let bytes = pattern(5 * block + 123)
        let original = try digest([.data(bytes)])
        var changed = bytes
        changed[4 * block + 7] ^= 1
        #expect(try digest([.data(changed)]) != original)
        #expect(try digest([.data(bytes + [0])]) != original)
        #expect(try digest([.data(bytes), .hole(block)]) != original)
        // Zeros only: the length tells them apart, in whole blocks and in bytes.
        #expect(try digest([.hole(3 * block)]) != digest([.hole(4 * block)]))
        #expect(try digest([.hole(3 * block)]) != digest([.hole(3 * block + 1)]))
        #expect(try digest([]) != digest([.hole(1)]))
        // A block of data that happens to start with the marker bytes is still its bytes.
        #expect(try digest([.data([1] + [UInt8](repeating: 0, count: block - 1))]) != digest([.hole(block)]))
    }

    @Test func theDigestIsSHA256Wide() throws {
        let value = try digest([.data(pattern(1000))])
        #expect(value.count == 64 && value.allSatisfy(\.isHexDigit))
    }
}

/// A base's digest, recorded when VMDriver compared it, holds only while neither image changes
/// (a real libvirt's storage pool on this machine: the volumes' times come from there).
@Suite(
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["VMDRIVER_INTEGRATION"] == "1", "needs libvirtd (scripts/test.sh)"))
struct ImageDigestsTests {
    @Test func anEqualPairIsKnownUntilOneSideChanges() throws {
        let folder = "/var/lib/libvirt/images/vmdriver-test-identical-\(UUID().uuidString.prefix(8))"
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-cache-\(UUID().uuidString)")
        setenv("VMDRIVER_CACHE_DIR", cache.path, 1)
        defer {
            unsetenv("VMDRIVER_CACHE_DIR")
            try? FileManager.default.removeItem(at: cache)
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let bytes = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try bytes.write(to: URL(fileURLWithPath: "\(folder)/a.img"))
        let connection = try Connection(uri: "qemu:///system")
        let pool = try connection.createStoragePool(
            xml: "<pool type='dir'><name>\(PathName.last(folder))</name><target><path>\(folder)</path></target></pool>")
        defer {
            try? pool.destroy()
            try? FileManager.default.removeItem(atPath: folder)
            try? connection.close()
        }
        // The same image seen from two "hosts": the fingerprints differ by host only.
        let path = "\(folder)/a.img"
        let hosts = (source: "host-one", target: "host-two")
        func same() throws -> (same: Bool, known: Bool)? {
            try MigrationStorage.sameImage(path, source: LocalStorage(connection: connection), target: connection, hosts: hosts)
        }
        // Compared the first time, known by its digest the second.
        #expect(try same()! == (true, false))
        #expect(try same()! == (true, true))
        // A third host's copy, compared with the first: it gets the same digest, so the second
        // and the third are known equal without a compare of their own.
        let third = (source: "host-one", target: "host-three")
        #expect(
            try MigrationStorage.sameImage(path, source: LocalStorage(connection: connection), target: connection, hosts: third)!
                == (true, false))
        #expect(
            try MigrationStorage.sameImage(
                path, source: LocalStorage(connection: connection), target: connection, hosts: ("host-two", "host-three"))!
                == (true, true))
        let volume = try connection.lookupStorageVolume(path: path)
        let before = try #require(ImageDigests.fingerprint(of: volume, host: hosts.source))
        let digest = try #require(ImageDigests.digest(before))
        #expect(ImageDigests.digest(try #require(ImageDigests.fingerprint(of: volume, host: hosts.target))) == digest)
        // An owner change (what libvirt's DAC driver does when QEMU opens a base) is not a change.
        chown(path, 107, 107)
        #expect(ImageDigests.fingerprint(of: volume, host: hosts.source) == before)
        // One byte written: the modification time moves, the digest is not known, and the pair
        // is compared again.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 1_000_000)
        try handle.write(contentsOf: Data([0xff]))
        try handle.close()
        let after = try #require(ImageDigests.fingerprint(of: volume, host: hosts.source))
        #expect(after != before)
        #expect(ImageDigests.digest(after) == nil)
        #expect(try same()! == (true, false))
        #expect(try #require(ImageDigests.digest(after)) != digest)
    }
}

/// The bytes a migration reports: memory and disks, each once.
struct MigrationBytesTests {
    func stats(data: UInt64?, memory: UInt64?, disk: UInt64?) -> Domain.JobStats {
        var stats = Domain.JobStats()
        stats.dataProcessed = data
        stats.memoryProcessed = memory
        stats.diskProcessed = disk
        return stats
    }

    @Test func diskBytesAreCountedOnce() {
        let mib: UInt64 = 1 << 20
        // libvirt's total holds memory only: the disk bytes seen are added.
        #expect(MigrationPlan.bytes(stats(data: 92 * mib, memory: 92 * mib, disk: 0), diskSeen: 1024 * mib) == 1116 * mib)
        // Its total holds the disk already, or more than memory and disk: memory + disk.
        #expect(MigrationPlan.bytes(stats(data: 1116 * mib, memory: 92 * mib, disk: 0), diskSeen: 1024 * mib) == 1116 * mib)
        #expect(
            MigrationPlan.bytes(stats(data: 2140 * mib, memory: 92 * mib, disk: 1024 * mib), diskSeen: 1024 * mib) == 1116 * mib)
        // No disk moved; no memory figure; no stats.
        #expect(MigrationPlan.bytes(stats(data: 92 * mib, memory: 92 * mib, disk: nil), diskSeen: nil) == 92 * mib)
        #expect(MigrationPlan.bytes(stats(data: 300 * mib, memory: nil, disk: nil), diskSeen: 200 * mib) == 300 * mib)
        #expect(MigrationPlan.bytes(nil, diskSeen: 5) == 5)
    }

}
