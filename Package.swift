// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "VMDriver",
    products: [
        .library(name: "VMDriver", targets: ["VMDriver"]),
        .library(name: "Libvirt", targets: ["Libvirt"]),
        .executable(name: "vmctl", targets: ["vmctl"]),
        // libvmdriver.so: the VIX, Parallels SDK and CIM C APIs (scripts/install-c-api.sh).
        .library(name: "vmdriver", type: .dynamic, targets: ["VMDriverCAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        // SHA-256 for the content digests of images VMDriver copies between hosts (ImageDigests).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Only for vmbench's spawn benchmark: VMDriver's own spawn helper beside swift-subprocess.
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        // `swift package generate-documentation --target VMDriver` (the DocC catalog, checked in CI).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibvirt",
            pkgConfig: "libvirt",
            providers: [.apt(["libvirt-dev"])]
        ),
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        .target(
            name: "VMDriver",
            dependencies: [
                "Libvirt",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The C API's headers (vix.h, PrlApi.h, cim_migration.h) and the variadic calls Swift
        // cannot define; the entry points are VMDriverCAPI's, declared extern in C.
        .target(name: "CVMDriverAPI"),
        .target(
            name: "VMDriverCAPI",
            dependencies: ["VMDriver", "CVMDriverAPI"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "-soname=libvmdriver.so.1"])]
        ),
        .executableTarget(
            name: "vmctl",
            dependencies: [
                "VMDriver",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The library-level benchmarks that scripts/bench.sh runs (BENCHMARKS.md).
        .executableTarget(
            name: "vmbench",
            dependencies: [
                "VMDriver",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        // Imports CLibvirt too: the constant tests check the header reader against the compiler.
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt", "CLibvirt"]),
        .testTarget(name: "VMDriverTests", dependencies: ["VMDriver", "Libvirt"]),
        // What the test targets share: sandboxes and the testbed's guests, the vmctl runner,
        // the checks on guests and host processes. Not a test target: it holds no tests.
        .target(name: "VMDriverTestSupport", dependencies: ["VMDriver", "Libvirt"], path: "Tests/VMDriverTestSupport"),
        .testTarget(name: "IntegrationTests", dependencies: ["VMDriver", "Libvirt", "VMDriverTestSupport"]),
        // Runs the built vmctl; depends on it so `swift test` builds it first.
        .testTarget(name: "CLITests", dependencies: ["vmctl", "VMDriverTestSupport"]),
        // Bad input, fuzzing, security and the fault matrix (RELIABILITY.md); depends on
        // vmctl so the built tool is there for the CLI cases.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "VMDriver", "Libvirt", "vmctl", "VMDriverTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
