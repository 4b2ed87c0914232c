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
}
