import Foundation
import Testing

@testable import VMDriver

/// The qcow2 header reader answers what `qemu-img` answers, or leaves the image to it.
@Suite(.enabled(if: Subprocess.which("qemu-img") != nil, "needs qemu-img (qemu-utils)"))
struct QCow2HeaderTests {
    let folder: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-qcow2-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    func qemuImg(_ arguments: String...) throws -> Data { try run("qemu-img", arguments) }

    /// Writes into an image as a guest would (qemu-io, also in qemu-utils).
    func qemuIO(_ arguments: String...) throws { _ = try run("qemu-io", arguments) }

    func run(_ tool: String, _ arguments: [String]) throws -> Data {
        let output = try Subprocess.run(try #require(Subprocess.which(tool)), arguments)
        guard output.status == 0 else { throw VMDriverError(.failed, "\(tool) \(arguments): \(output.stderr)") }
        return output.stdout
    }

    /// What `qemu-img info --backing-chain` says: format, then the chain's (path, format).
    func qemuImgChain(_ path: String) throws -> (String, [VMDetails.BackingImage]) {
        let json = try qemuImg("info", "-U", "--backing-chain", "--output=json", "--", path)
        let list = try #require(try JSONSerialization.jsonObject(with: json) as? [[String: Any]])
        return (
            list[0]["format"] as? String ?? "?",
            list.dropFirst().map {
                VMDetails.BackingImage(path: $0["filename"] as? String ?? "?", format: $0["format"] as? String)
            }
        )
    }

    func expectSameAsQemuImg(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let native = try #require(QCow2Header.chain(of: path), sourceLocation: sourceLocation)
        let tool = try qemuImgChain(path)
        #expect(native.format == tool.0, sourceLocation: sourceLocation)
        #expect(native.chain == tool.1, sourceLocation: sourceLocation)
    }

    @Test func aChainOfThreeWithAbsoluteAndRelativeBackingNames() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try qemuImg("create", "-q", "-f", "qcow2", "\(folder)/base.qcow2", "1G")
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "\(folder)/base.qcow2", "\(folder)/mid.qcow2")
        // A relative name is taken from the overlay's folder.
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "mid.qcow2", "\(folder)/top.qcow2")
        try expectSameAsQemuImg("\(folder)/base.qcow2")
        try expectSameAsQemuImg("\(folder)/mid.qcow2")
        try expectSameAsQemuImg("\(folder)/top.qcow2")
        #expect(QCow2Header.chain(of: "\(folder)/top.qcow2")?.chain.count == 2)
    }

    @Test func aRawBaseAndAnOldVersion2Image() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try qemuImg("create", "-q", "-f", "raw", "\(folder)/base.img", "64M")
        _ = try qemuImg(
            "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-F", "raw", "-b", "\(folder)/base.img", "\(folder)/v2.qcow2")
        #expect(QCow2Header.read(path: "\(folder)/v2.qcow2")?.version == 2)
        try expectSameAsQemuImg("\(folder)/v2.qcow2")
    }

    @Test func whatItDoesNotUnderstandIsLeftToQemuImg() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A raw image (qemu-img probes formats), a missing backing file, a file that is no image.
        _ = try qemuImg("create", "-q", "-f", "raw", "\(folder)/disk.img", "1M")
        #expect(QCow2Header.chain(of: "\(folder)/disk.img") == nil)
        _ = try qemuImg("create", "-q", "-f", "qcow2", "\(folder)/gone.qcow2", "1G")
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "\(folder)/gone.qcow2", "\(folder)/orphan.qcow2")
        try FileManager.default.removeItem(atPath: "\(folder)/gone.qcow2")
        #expect(QCow2Header.chain(of: "\(folder)/orphan.qcow2") == nil)
        try Data("QFI\u{fb} but not really an image".utf8).write(to: URL(fileURLWithPath: "\(folder)/fake.qcow2"))
        #expect(QCow2Header.chain(of: "\(folder)/fake.qcow2") == nil)
        #expect(QCow2Header.chain(of: "\(folder)/missing.qcow2") == nil)
        // Truncated or garbage headers never crash the parser.
        var header = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/orphan.qcow2")).prefix(4096)
        for cut in stride(from: 0, to: 600, by: 7) { _ = QCow2Header.parse(header.prefix(cut)) }
        for at in [8, 16, 36, 40, 100] { header[at] = 0xff }
        _ = QCow2Header.parse(header)
    }

    @Test func anOverlayIsEmptyUntilSomethingIsWrittenToIt() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "\(folder)/base.qcow2", "2G")
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "\(folder)/base.qcow2", "\(folder)/top.qcow2")
        let top = "\(folder)/top.qcow2"
        #expect(QCow2Header.mapsNothing(path: top) == true)
        #expect(LocalImages.overlayIsEmpty(top))
        // The base maps every cluster (preallocated metadata): not empty.
        #expect(QCow2Header.mapsNothing(path: "\(folder)/base.qcow2") == false)
        // One 512-byte write far into the disk, and a zeroed range: both are data of its own.
        try qemuIO("-f", "qcow2", "-c", "write -P 0x5a 1536M 512", top)
        #expect(QCow2Header.mapsNothing(path: top) == false)
        #expect(!LocalImages.overlayIsEmpty(top))
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "\(folder)/base.qcow2", "\(folder)/zeroed.qcow2")
        try qemuIO("-f", "qcow2", "-c", "write -z 0 64k", "\(folder)/zeroed.qcow2")
        #expect(!LocalImages.overlayIsEmpty("\(folder)/zeroed.qcow2"))
    }

    /// `qemu-img check`'s JSON for an image: its errors, leaks and corruptions are what count.
    func check(_ path: String) throws -> [String: Any] {
        let output = try Subprocess.run(try #require(Subprocess.which("qemu-img")), ["check", "--output=json", "--", path])
        #expect(output.status == 0, "qemu-img check \(path): \(output.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any])
    }

    func info(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: try qemuImg("info", "-U", "--output=json", "--", path)) as? [String: Any])
    }

    /// An overlay VMDriver wrote itself: reserved as a clone reserves it, then written.
    func writeOverlay(_ path: String, base: String, format: String) throws -> Bool {
        try LocalImages.reserve(path)
        return try QCow2Header.writeOverlay(at: path, base: base, baseFormat: format)
    }

    @Test(arguments: [("qcow2", "1000000"), ("qcow2", "1G"), ("qcow2", "3T"), ("qcow2", "16T"), ("raw", "65M")])
    func anOverlayWrittenByVMDriverIsOneQemuImgAcceptsAndReadsThrough(format: String, size: String) throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let base = "\(folder)/base.\(format)"
        _ = try qemuImg("create", "-q", "-f", format, base, size)
        try qemuIO("-f", format, "-c", "write -P 0x5a 0 64k", "-c", "write -P 0xa5 512k 4k", base)
        let ours = "\(folder)/ours.qcow2"
        let theirs = "\(folder)/theirs.qcow2"
        #expect(try writeOverlay(ours, base: base, format: format))
        _ = try qemuImg("create", "-q", "-f", "qcow2", "-F", format, "-b", base, theirs)

        // Nothing for qemu-img check to say: no errors, no leaked clusters, nothing corrupt.
        let checked = try check(ours)
        #expect(checked["check-errors"] as? Int == 0)
        #expect(checked["leaks"] == nil && checked["corruptions"] == nil)
        #expect(checked["image-end-offset"] as? Int != nil)
        // What qemu-img info says of it is what it says of qemu-img's own overlay.
        let (a, b) = (try info(ours), try info(theirs))
        for key in [
            "format", "virtual-size", "cluster-size", "backing-filename", "backing-filename-format", "full-backing-filename",
        ] {
            #expect("\(a[key] ?? "none")" == "\(b[key] ?? "none")", "\(key)")
        }
        let specific = (a["format-specific"] as? [String: Any])?["data"] as? [String: Any]
        #expect(specific?["compat"] as? String == "1.1")
        #expect(specific?["refcount-bits"] as? Int == 16)
        #expect(specific?["corrupt"] as? Bool == false)
        // VMDriver's own reader sees the chain, and an empty overlay.
        #expect(QCow2Header.chain(of: ours)?.chain == [VMDetails.BackingImage(path: base, format: format)])
        #expect(QCow2Header.mapsNothing(path: ours) == true)
        // Reads fall through to the base; writes land in the overlay, which stays consistent.
        try qemuIO("-f", "qcow2", "-c", "read -P 0x5a 0 64k", "-c", "read -P 0xa5 512k 4k", "-c", "read -P 0 768k 64k", ours)
        try qemuIO("-f", "qcow2", "-c", "write -P 0x33 4k 8k", ours)
        try qemuIO("-f", "qcow2", "-c", "read -P 0x33 4k 8k", "-c", "read -P 0x5a 12k 52k", ours)
        #expect(try check(ours)["check-errors"] as? Int == 0)
        #expect(QCow2Header.mapsNothing(path: ours) == false)
        // The base was not written to.
        try qemuIO("-f", format, "-c", "read -P 0x5a 0 64k", base)
    }

    @Test func aBaseTheWriterCannotSizeIsLeftToQemuImgAndNothingIsWritten() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Not a qcow2 image (said to be one), and a missing raw base.
        _ = FileManager.default.createFile(atPath: "\(folder)/junk.qcow2", contents: Data(repeating: 7, count: 4096))
        #expect(try !writeOverlay("\(folder)/a.qcow2", base: "\(folder)/junk.qcow2", format: "qcow2"))
        #expect(try !writeOverlay("\(folder)/b.qcow2", base: "\(folder)/missing.img", format: "raw"))
        #expect(try !writeOverlay("\(folder)/c.qcow2", base: "\(folder)/junk.qcow2", format: "vmdk"))
        for name in ["a", "b", "c"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(folder)/\(name).qcow2")
            #expect(attributes[.size] as? Int == 0)
        }
        // Through LocalImages, the same base goes to qemu-img, whose refusal names it.
        #expect(throws: VMDriverError.self) {
            try LocalImages.createOverlay("\(folder)/a.qcow2", base: "\(folder)/junk.qcow2", baseFormat: "qcow2")
        }
    }
}
