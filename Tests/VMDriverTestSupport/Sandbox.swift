import Foundation
import Libvirt
import Testing

/// Integration tests run only where `scripts/test.sh` set up a real host and built the fixtures.
package enum Integration {
    package static let environment = ProcessInfo.processInfo.environment
    package static let enabled = environment["VMDRIVER_INTEGRATION"] == "1"
    package static let uri = environment["VMDRIVER_TEST_URI"] ?? "qemu:///system"
    package static let fixtures = URL(fileURLWithPath: environment["VMDRIVER_FIXTURES"] ?? "/var/cache/vmdriver/fixtures")
    /// Where per-test guests keep their disks and serial logs; QEMU (libvirt-qemu) can reach it.
    package static let workRoot = URL(fileURLWithPath: "/var/lib/libvirt/images")
}

/// One test's guest: its own directory with a copy of the data disk, its serial log and its
/// domain XML. `cleanUp()` destroys and undefines the domain and removes the directory; tests
/// call it in `defer`, so it runs when they fail too. It goes through the Libvirt layer
/// directly, so cleanup does not depend on the code under test.
package final class Sandbox {
    package let name: String
    package let directory: URL
    package var disk: URL { directory.appendingPathComponent("data.qcow2") }
    package var serial: URL { directory.appendingPathComponent("serial.log") }
    package var xmlFile: URL { directory.appendingPathComponent("\(name).xml") }

    package init(_ label: String) throws {
        name = "vmdriver-test-\(label)-\(UUID().uuidString.prefix(6).lowercased())"
        directory = Integration.workRoot.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Copies the fixture's ext4 data disk into the sandbox.
    package func copyDataDisk() throws {
        try FileManager.default.copyItem(at: Integration.fixtures.appendingPathComponent("data.qcow2"), to: disk)
    }

    /// Writes the Linux guest's domain XML (from the fixture template) and returns its path.
    package func writeLinuxXML(domainType: String, tag: String, disk: URL? = nil) throws -> String {
        try fill(
            "linux-domain.xml.in",
            [
                "@NAME@": name, "@DISK@": (disk ?? self.disk).path, "@SERIAL@": serial.path,
                "@KERNEL@": Integration.fixtures.appendingPathComponent("vmlinuz").path,
                "@INITRD@": Integration.fixtures.appendingPathComponent("initrd.img").path,
                "@TAG@": tag, "@DOMAIN_TYPE@": domainType,
            ])
    }

    /// Writes the boot-sector guest's domain XML and returns its path.
    package func writeBootSectorXML(domainType: String) throws -> String {
        let image = directory.appendingPathComponent("boot.img")
        try FileManager.default.copyItem(at: Integration.fixtures.appendingPathComponent("bootsector.img"), to: image)
        return try fill(
            "bootsector-domain.xml.in",
            [
                "@NAME@": name, "@DISK@": image.path, "@SERIAL@": serial.path, "@DOMAIN_TYPE@": domainType,
            ])
    }

    /// Writes the boot-sector guest's domain XML with `devices` (elements) added to its devices
    /// and returns its path.
    package func writeBootSectorXML(domainType: String, adding devices: String) throws -> String {
        let path = try writeBootSectorXML(domainType: domainType)
        let xml = try String(contentsOfFile: path, encoding: .utf8)
        try xml.replacingOccurrences(of: "<controller type='usb'", with: devices + "<controller type='usb'")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Writes the boot-sector guest's domain XML with a second disk (IDE hdb): a raw image of
    /// `mib` MiB of random bytes, big enough for a copy of it to be in flight. Returns the XML's
    /// path and the image.
    package func writeBootSectorXML(domainType: String, randomDiskMiB mib: Int) throws -> (xml: String, disk: URL) {
        let big = try makeRandomDisk(mib: mib)
        return (try writeBootSectorXML(domainType: domainType, adding: Self.rawDiskElement(big)), big)
    }

    /// A raw image of `mib` MiB of random bytes in the sandbox (`big.raw`).
    package func makeRandomDisk(mib: Int) throws -> URL {
        let big = directory.appendingPathComponent("big.raw")
        try run("dd", ["if=/dev/urandom", "of=\(big.path)", "bs=1M", "count=\(mib)", "status=none"])
        return big
    }

    /// The `<disk>` element of a raw image attached as `target` on `bus`.
    package static func rawDiskElement(_ image: URL, target: String = "hdb", bus: String = "ide") -> String {
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='\(image.path)'/><target dev='\(target)' bus='\(bus)'/></disk>"
    }

    private func fill(_ template: String, _ values: [String: String]) throws -> String {
        try Integration.fill(template, values).write(to: xmlFile, atomically: true, encoding: .utf8)
        return xmlFile.path
    }

    package func cleanUp() {
        // The sandbox's VM and every clone of it (clones are named after it).
        Integration.removeDomains(named: name, on: Integration.uri)
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: What the guest said

    package var log: SerialLog { SerialLog(url: serial) }
    /// The serial log of a clone made into this sandbox's directory.
    package func log(ofClone clone: String) -> SerialLog {
        SerialLog(url: directory.appendingPathComponent("\(clone)-serial0.log"))
    }

    package func serialLines() -> [String] { log.lines() }
    package func heartbeats() -> [Int] { log.heartbeats() }
    package func markersSeenByGuest() -> [String]? { log.markers() }

    /// Waits until `condition` holds, polling every 100 ms; false at the deadline.
    package func waitFor(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
        await Integration.waitFor(seconds, condition)
    }

    /// The markers file read from the disk image on the host, not through the guest.
    package func markersOnDisk(_ image: URL? = nil) throws -> [String] {
        try Integration.markers(inImage: (image ?? disk).path)
    }
}

/// What a guest printed on its serial port (CR LF folded).
package struct SerialLog {
    package let url: URL

    package init(url: URL) { self.url = url }

    package func lines() -> [String] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
    }

    /// The heartbeat numbers printed since the last boot began.
    package func heartbeats() -> [Int] {
        let lines = lines()
        let start = lines.lastIndex { $0.hasPrefix("VMDRIVER-INIT") } ?? 0
        return lines[start...].compactMap { line in
            line.hasPrefix("VMDRIVER-HEARTBEAT ") ? Int(line.dropFirst("VMDRIVER-HEARTBEAT ".count)) : nil
        }
    }

    /// The number of boots the log shows.
    package func boots() -> Int { lines().filter { $0.hasPrefix("VMDRIVER-INIT") }.count }

    /// The markers file as the guest printed it on its last boot.
    package func markers() -> [String]? {
        let lines = lines()
        guard let begin = lines.lastIndex(of: "VMDRIVER-MARKERS-BEGIN"),
            let end = lines[begin...].firstIndex(of: "VMDRIVER-MARKERS-END")
        else { return nil }
        return Array(lines[(begin + 1)..<end])
    }
}

extension Integration {
    /// A fixture template with its placeholders (`@NAME@` …) filled in.
    package static func fill(_ template: String, _ values: [String: String]) throws -> String {
        var text = try String(contentsOf: fixtures.appendingPathComponent(template), encoding: .utf8)
        for (key, value) in values { text = text.replacingOccurrences(of: key, with: value) }
        return text
    }

    /// Destroys and undefines every domain whose name starts with `name`, through the Libvirt
    /// layer directly, so cleaning up does not depend on the code under test.
    package static func removeDomains(named name: String, on uri: String) {
        guard let connection = try? Connection(uri: uri) else { return }
        for domain in (try? connection.listAllDomains()) ?? [] where (try? domain.name())?.hasPrefix(name) == true {
            // A loaded host can answer a destroy with EBUSY while QEMU is still dying: try again.
            for _ in 1...3 {
                guard (try? domain.isActive()) == true else { break }
                do { try domain.destroy() } catch {
                    print("clean-up: destroying \((try? domain.name()) ?? name): \(error)")
                }
            }
            do { try domain.undefine([.managedSave, .snapshotsMetadata, .nvram]) } catch let error where error.code != .noDomain {
                print("clean-up: undefining \((try? domain.name()) ?? name): \(error)")
            } catch {}
        }
        try? connection.close()
    }

    /// The names of the domains qemu:///system has whose name starts with `prefix`, read
    /// without VMDriver.
    package static func domains(prefix: String) throws -> [String] {
        let connection = try Connection(uri: uri)
        defer { try? connection.close() }
        return try connection.listAllDomains().compactMap { try? $0.name() }.filter { $0.hasPrefix(prefix) }
    }

    /// The fixture disk's markers file, read from an image on the host (not through a guest).
    package static func markers(inImage path: String) throws -> [String] {
        let raw = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-inspect-\(UUID().uuidString).raw").path
        defer { try? FileManager.default.removeItem(atPath: raw) }
        try run("qemu-img", ["convert", "-U", "-O", "raw", path, raw])
        return try run("debugfs", ["-R", "cat /markers", raw]).split(whereSeparator: \.isNewline).map(String.init)
            .filter { !$0.isEmpty }
    }

    /// Waits until `condition` holds, polling every 100 ms; false at the deadline.
    package static func waitFor(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return condition()
    }
}

/// Runs a tool with an argument array and returns its stdout; throws on a non-zero exit.
@discardableResult
package func run(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ToolFailed(tool: tool, status: process.terminationStatus, stderr: String(decoding: errors, as: UTF8.self))
    }
    return String(decoding: data, as: UTF8.self)
}

package struct ToolFailed: Error, CustomStringConvertible {
    package var tool: String
    package var status: Int32
    package var stderr: String

    package init(tool: String, status: Int32, stderr: String) {
        self.tool = tool
        self.status = status
        self.stderr = stderr
    }

    package var description: String { "\(tool) exited \(status): \(stderr)" }
}
