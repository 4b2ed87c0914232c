// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "VMDriver",
    products: [
        .library(name: "VMDriver", targets: ["VMDriver"]),
        .library(name: "Libvirt", targets: ["Libvirt"]),
        .executable(name: "vmctl", targets: ["vmctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
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
            ]
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
            ]
        ),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"]),
        .testTarget(name: "VMDriverTests", dependencies: ["VMDriver", "Libvirt"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VMDriver", "Libvirt"]),
        .testTarget(name: "ReliabilityTests", dependencies: ["VMDriver", "Libvirt"]),
        // Runs the built vmctl; depends on it so `swift test` builds it first.
        .testTarget(name: "CLITests", dependencies: ["vmctl"]),
    ]
)
