import Foundation

/// Who a process is, in a way a recycled pid cannot fake: its pid, its start time (clock ticks
/// after boot, field 22 of /proc/PID/stat) and the boot it belongs to
/// (/proc/sys/kernel/random/boot_id). Two processes with the same pid in one boot started at
/// different times. The machine's name tells a reboot (same name, new boot) from another machine.
struct ProcessIdentity: Sendable, Equatable {
    var pid: Int32
    var startTime: UInt64
    var bootID: String
    var machine: String

    /// This process.
    static let current: ProcessIdentity? = {
        guard let start = startTime(ofPID: getpid(), stat: "/proc/self/stat"), let boot = bootID() else { return nil }
        return ProcessIdentity(pid: getpid(), startTime: start, bootID: boot, machine: machineName())
    }()

    /// The kernel's node name (uname -n).
    static func machineName() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// This machine's boot: the same for every process (and network namespace) until it reboots.
    static func bootID(_ path: String = "/proc/sys/kernel/random/boot_id") -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The start time of a running process, nil when there is none or it is a zombie (it has
    /// ended; PID 1 may reap it seconds later).
    static func startTime(ofPID pid: Int32, stat path: String? = nil) -> UInt64? {
        guard let text = try? String(contentsOfFile: path ?? "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return parseStat(text)
    }

    /// Field 22 of a /proc/PID/stat line, unless field 3 says zombie or dead. The command name
    /// (field 2) is in parentheses and may hold spaces and parentheses itself: the fields are
    /// counted from the last ")".
    static func parseStat(_ text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, !["Z", "X", "x"].contains(fields[0]) else { return nil }
        return UInt64(fields[19])
    }

    /// Where this process stands, seen from here.
    enum Liveness: Sendable {
        /// Running now, the same process (pid and start time match).
        case alive
        /// Ended (its pid is free or now another process's).
        case gone
        /// It runs on another machine: this one cannot tell.
        case unknown
    }

    func liveness(bootID ours: String? = ProcessIdentity.bootID(), machine here: String = machineName()) -> Liveness {
        guard let ours else { return .unknown }
        // This machine's name in another boot: it has rebooted since, which ended the process.
        guard ours == bootID else { return machine == here ? .gone : .unknown }
        return Self.startTime(ofPID: pid) == startTime ? .alive : .gone
    }
}
