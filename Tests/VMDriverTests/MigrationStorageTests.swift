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

/// A base found identical is remembered only while neither image changes (a real libvirt's
/// storage pool on this machine: the volumes' change times come from there).
@Suite(
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["VMDRIVER_INTEGRATION"] == "1", "needs libvirtd (scripts/test.sh)"))
struct IdenticalImagesTests {
    @Test func anEqualPairIsRememberedUntilOneSideChanges() throws {
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
        #expect(
            try MigrationStorage.sameImage(path, source: LocalStorage(connection: connection), target: connection, hosts: hosts)
                == true)
        let volume = try connection.lookupStorageVolume(path: path)
        let before = try #require(IdenticalImages.fingerprint(of: volume, host: hosts.source))
        #expect(IdenticalImages.known(before, try #require(IdenticalImages.fingerprint(of: volume, host: hosts.target))))
        // One byte written: the modification time moves, and the pair is unknown again.
        // An owner change (what libvirt's DAC driver does when QEMU opens a base) is not a change.
        chown(path, 107, 107)
        #expect(IdenticalImages.fingerprint(of: volume, host: hosts.source) == before)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 1_000_000)
        try handle.write(contentsOf: Data([0xff]))
        try handle.close()
        let after = try #require(IdenticalImages.fingerprint(of: volume, host: hosts.source))
        #expect(after != before)
        #expect(!IdenticalImages.known(after, try #require(IdenticalImages.fingerprint(of: volume, host: hosts.target))))
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
