import Foundation
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
