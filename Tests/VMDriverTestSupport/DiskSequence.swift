import Foundation

/// The fixture's disk sequence (`vmdriver.seq=RATE`, Fixtures/linux/seqwrite.c): numbered
/// 32-byte records the guest appends to `/seq` on its data disk, each fsync'd before the next.
package struct DiskSequence: Equatable, CustomStringConvertible {
    /// Records 1...whole are on the disk, in order, each exactly as written.
    package var whole: Int
    /// The first record after them that is there but not the one expected (a changed or
    /// misplaced record), if any; a torn record at the very end is not counted.
    package var firstWrong: String?

    package static let size = 32

    /// Record `n` as the guest writes it.
    package static func record(_ n: Int) -> String {
        let number = String(n)
        let key = String(UInt64(n) &* 0x9E37_79B9_7F4A_7C15, radix: 16)
        return "seq \(String(repeating: "0", count: max(0, 10 - number.count)))\(number) "
            + "\(String(repeating: "0", count: 16 - key.count))\(key)\n"
    }

    /// Checks the bytes of `/seq`.
    package init(_ data: Data) {
        let bytes = [UInt8](data)
        var n = 0
        var wrong: String?
        while (n + 1) * Self.size <= bytes.count {
            let got = String(decoding: bytes[(n * Self.size)..<((n + 1) * Self.size)], as: UTF8.self)
            guard got == Self.record(n + 1) else {
                wrong = "record \(n + 1) reads \(got.debugDescription)"
                break
            }
            n += 1
        }
        whole = n
        firstWrong = wrong
    }

    /// Reads `/seq` from the data disk `image` on this machine: a raw copy, its ext4 journal
    /// replayed on the copy (`e2fsck -fy`: what a mount would do), then `debugfs`. The guest
    /// may go on writing: records it reported as synced before this call must all be there.
    package init(inImage image: String) throws {
        let raw = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-seq-\(UUID().uuidString).raw").path
        let out = raw + ".seq"
        defer {
            try? FileManager.default.removeItem(atPath: raw)
            try? FileManager.default.removeItem(atPath: out)
        }
        try run("qemu-img", ["convert", "-U", "-O", "raw", image, raw])
        // 0: clean, 1: errors fixed (the replayed journal), 2: fixed, reboot advised.
        let fsck = Process()
        fsck.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        fsck.arguments = ["e2fsck", "-fy", raw]
        fsck.standardOutput = FileHandle.nullDevice
        fsck.standardError = FileHandle.nullDevice
        try fsck.run()
        fsck.waitUntilExit()
        guard fsck.terminationStatus <= 2 else {
            throw ToolFailed(tool: "e2fsck", status: fsck.terminationStatus, stderr: "the data disk of \(image) is damaged")
        }
        try run("debugfs", ["-R", "dump /seq \(out)", raw])
        self.init(try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    package var description: String {
        "records 1...\(whole) whole" + (firstWrong.map { ", then \($0)" } ?? "")
    }
}

extension SerialLog {
    /// The last `VMDRIVER-SEQ N` the guest printed: records 1...N were on its disk then (0 if none).
    package func sequenceSynced() -> Int {
        for line in lines().reversed() where line.hasPrefix("VMDRIVER-SEQ ") {
            if let n = Int(line.dropFirst("VMDRIVER-SEQ ".count)) { return n }
        }
        return 0
    }
}
