import ArgumentParser
import Foundation
import Subprocess
@_spi(Benchmarks) import VMDriver

/// The paths that spawn (qemu-img info, a reflink/sparse cp), run by VMDriver's own spawn
/// helper and by swift-subprocess, interleaved pair by pair, the same work on both sides.
/// Prints the medians and the median of the per-pair ratios (ours / swift-subprocess).
struct Spawn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "VMDriver's spawn helper beside swift-subprocess on qemu-img info and cp.")

    @Option(help: "Pairs per case.") var count = 200
    @Option(help: "A disk image for qemu-img info and cp.") var image: String

    func run() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vmbench-spawn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let copy = scratch.appendingPathComponent("copy.img").path
        let cases: [(String, String, [String])] = [
            ("qemu-img info", "/usr/bin/qemu-img", ["info", "-U", "--backing-chain", "--output=json", "--", image]),
            ("cp --reflink=auto --sparse=always", "/bin/cp", ["--reflink=auto", "--sparse=always", "--", image, copy]),
        ]
        var results: [String: Any] = [:]
        for (name, executable, arguments) in cases {
            var ours: [Double] = []
            var theirs: [Double] = []
            var ratios: [Double] = []
            let clock = ContinuousClock()
            for index in 0..<count {
                // Alternate which goes first, so neither always runs on a warmer cache.
                var pair: [Bool: Double] = [:]
                for useOurs in index % 2 == 0 ? [true, false] : [false, true] {
                    try? FileManager.default.removeItem(atPath: copy)
                    let started = clock.now
                    if useOurs {
                        let result = try SpawnHelper.run(executable, arguments)
                        guard result.status == 0 else { throw ValidationError("\(executable) exited \(result.status)") }
                    } else {
                        let result = try await Subprocess.run(
                            .path(.init(executable)), arguments: .init(arguments), output: .bytes(limit: 1 << 24),
                            error: .string(limit: 1 << 16))
                        guard result.terminationStatus.isSuccess else {
                            throw ValidationError("\(executable) ended \(result.terminationStatus)")
                        }
                    }
                    pair[useOurs] = seconds(clock.now - started)
                }
                ours.append(pair[true]!)
                theirs.append(pair[false]!)
                ratios.append(pair[true]! / pair[false]!)
            }
            results[name] = [
                "vmdriver_median_s": median(ours), "swift_subprocess_median_s": median(theirs),
                "ratio_median": median(ratios), "pairs": count,
            ]
        }
        try emit(["case": "spawn", "image": image, "results": results])
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}
