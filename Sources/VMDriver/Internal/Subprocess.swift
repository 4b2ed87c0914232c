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

/// VMDriver's spawn helper as the benchmarks call it (`vmbench spawn`, beside swift-subprocess).
@_spi(Benchmarks) public enum SpawnHelper {
    /// Runs `executable` with `arguments` as VMDriver runs qemu-img and cp (spawned directly, both
    /// pipes drained, a process group of its own); returns its exit status and the bytes of
    /// its standard output.
    public static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, outputBytes: Int) {
        let output = try Subprocess.run(executable, arguments)
        return (output.status, output.stdout.count)
    }
}
