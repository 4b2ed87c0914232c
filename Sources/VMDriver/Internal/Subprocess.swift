import Foundation

/// Runs helper programs (qemu-img) with an argument array: never through a shell.
enum Subprocess {
    struct Output {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    /// Finds `name` in PATH (and the sbin directories root's tools live in).
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return directories.lazy.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `executable` with `arguments` and collects its output. Blocking: call from the pool.
    static func run(_ executable: String, _ arguments: [String]) throws -> Output {
        try run(executable, arguments, handle: Handle())
    }
}
