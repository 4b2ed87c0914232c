import Foundation
import Testing
import VMDriverTestSupport

/// What the fault tests do to the testbed, through `scripts/testbed.sh` and by PID.
enum Faults {
    /// How many times each case runs: 3 by default (the whole suite takes about 11 minutes
    /// then, RELIABILITY.md), `VMDRIVER_RELIABILITY_REPEAT` if set (10 with `scripts/test.sh --long`).
    static let repeats = max(1, Int(ProcessInfo.processInfo.environment["VMDRIVER_RELIABILITY_REPEAT"] ?? "") ?? 3)

    @discardableResult
    static func testbed(_ arguments: String...) throws -> String {
        try run("bash", [packageRoot.appendingPathComponent("scripts/testbed.sh").path] + arguments)
    }

    /// The PID of a host's libvirtd.
    static func daemonPID(_ host: Testbed.Name) throws -> Int32 {
        try #require(Int32(try testbed("daemon-pid", host.rawValue).trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The PIDs of a guest's QEMU processes running in a host's namespaces.
    static func qemuPIDs(of name: String, on host: Testbed.Name) -> [Int32] {
        let pids = ((try? run("pgrep", ["-f", "guest=\(name),"])) ?? "").split(whereSeparator: \.isNewline).compactMap {
            Int32($0)
        }
        return pids.filter { pid in
            let namespace = (try? run("ip", ["netns", "identify", "\(pid)"])) ?? ""
            return namespace.trimmingCharacters(in: .whitespacesAndNewlines) == host.rawValue && alive(pid)
        }
    }

    /// Running, not a zombie (PID 1 here reaps late).
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        guard let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].dropFirst(2).hasPrefix("Z")
    }

    static func kill(_ pid: Int32) throws { try run("kill", ["-KILL", "\(pid)"]) }

    /// Puts the testbed back whatever a test did: both links up, both daemons running.
    static func restoreTestbed() {
        for host in Testbed.Name.allCases {
            _ = try? testbed("link", host.rawValue, "up")
            _ = try? testbed("restart-daemon", host.rawValue)
        }
    }
}

extension SerialLog {
    /// The dirtying workload's page-check lines ("VMDRIVER-DIRTY pass=N ok|CORRUPT …").
    func passes() -> [String] { lines().filter { $0.hasPrefix("VMDRIVER-DIRTY pass=") } }
}
