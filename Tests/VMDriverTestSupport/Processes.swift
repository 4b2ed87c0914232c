import Foundation

/// The `cp` or `qemu-img` whose command line names `path`.
package func copyProcesses(reading path: String) -> [Int32] {
    let pids = ((try? run("pgrep", ["-f", "--", path])) ?? "").split(whereSeparator: \.isNewline).compactMap { Int32($0) }
    return pids.filter { pid in
        let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(
            in: .whitespacesAndNewlines)
        return comm == "cp" || comm == "qemu-img"
    }
}
