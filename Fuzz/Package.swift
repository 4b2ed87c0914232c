// swift-tools-version: 6.0
// The libFuzzer target (RELIABILITY.md), apart from the main package so a plain
// `swift build` there never needs the fuzzer runtime. Built only by scripts/fuzz.sh:
//   swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
import PackageDescription

let package = Package(
    name: "VMDriverFuzz",
    dependencies: [
        .package(name: "VMDriver", path: "..")
    ],
    targets: [
        // One binary for every target: VMFUZZ_TARGET (destination, xml, name) picks the check,
        // which is Tests/ReliabilityTests/FuzzHarness.swift itself (linked here), so the fuzzer
        // and the property suite that replays Fuzz/corpus check the same properties.
        .executableTarget(
            name: "vmfuzz",
            dependencies: ["FuzzDriver", .product(name: "VMDriver", package: "VMDriver")],
            path: "Sources/vmfuzz"
        ),
        .target(name: "FuzzDriver", path: "Sources/FuzzDriver"),
    ]
)
