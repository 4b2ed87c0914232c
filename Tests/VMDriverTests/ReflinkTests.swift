import Foundation
import Testing

@testable import VMDriver

/// A full clone's copy on a filesystem that shares extents is one FICLONE (no cp), reads back
/// the same bytes and takes no new space; elsewhere the same call copies. Needs root, mkfs.xfs
/// and losetup for the XFS loop image (scripts/setup-host.sh installs xfsprogs).
@Suite(
    "Full copies by reflink",
    .enabled(
        if: getuid() == 0 && Subprocess.which("mkfs.xfs") != nil && Subprocess.which("losetup") != nil
            && Subprocess.which("qemu-io") != nil,
        "needs root, xfsprogs, util-linux and qemu-utils"))
struct ReflinkTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-reflink-\(UUID().uuidString)").path

    func run(_ tool: String, _ arguments: [String]) throws -> String {
        let output = try Subprocess.run(try #require(Subprocess.which(tool)), arguments)
        guard output.status == 0 else { throw VMDriverError(.failed, "\(tool) \(arguments): \(output.stderr)") }
        return String(decoding: output.stdout, as: UTF8.self)
    }

    func freeBytes(_ path: String) -> UInt64 {
        var info = statvfs()
        _ = statvfs(path, &info)
        return UInt64(info.f_bfree) * UInt64(info.f_frsize)
    }

    @Test func aCopyOnXFSSharesTheSourcesExtentsAndReadsTheSame() throws {
        let image = "\(folder)/xfs.img"
        let mount = "\(folder)/mnt"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: image, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        try handle.truncate(atOffset: 1 << 30)
        try handle.close()
        _ = try run("mkfs.xfs", ["-q", "-m", "reflink=1", image])
        let device = try run("losetup", ["-f", "--show", image]).trimmingCharacters(in: .whitespacesAndNewlines)
        defer {
            _ = try? run("umount", [mount])
            _ = try? run("losetup", ["-d", device])
            try? FileManager.default.removeItem(atPath: folder)
        }
        _ = try run("mount", [device, mount])
        let source = "\(mount)/source.qcow2"
        _ = try run("qemu-img", ["create", "-q", "-f", "qcow2", source, "1G"])
        _ = try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 64M", "-c", "write -P 0xa5 512M 1M", source])
        _ = try run("sync", [])
        let before = freeBytes(mount)

        let target = "\(mount)/clone.qcow2"
        try LocalImages.reserve(target)
        let plan = DiskCopier.Plan(source: source, target: target, format: "qcow2", flatten: false, bytes: 65 << 20)
        #expect(try DiskCopier.reflink(plan))
        // Shared extents: the 65 MiB of data took (almost) no new space.
        #expect(before - freeBytes(mount) < 4 << 20)
        _ = try run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0 64M", "-c", "read -P 0xa5 512M 1M", target])
        #expect(try run("cmp", [source, target]).isEmpty)
        #expect((try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int) == 0o600)
        // A write to the clone leaves the source as it was (copy on write).
        _ = try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x33 0 1M", target])
        _ = try run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0 64M", source])

        // Across filesystems (the XFS source, a target in the temporary folder): no reflink, and
        // nothing changed; the copier then copies with cp, byte for byte.
        let elsewhere = "\(folder)/copy.qcow2"
        try LocalImages.reserve(elsewhere)
        var other = plan
        other.target = elsewhere
        #expect(try !DiskCopier.reflink(other))
        #expect((try FileManager.default.attributesOfItem(atPath: elsewhere)[.size] as? Int) == 0)
        try DiskCopier.copy(other, handle: Subprocess.Handle()) { _ in }
        #expect(try run("cmp", [source, elsewhere]).isEmpty)
    }
}
