import ArgumentParser
import Foundation
import VMDriver

struct Caps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps",
        abstract: "Show what the host can do: accelerators, clone and migration types, transports, security levels, features.")

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Flag(help: "Probe the accelerators again instead of using the day-old result.")
    var refresh = false

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let caps = try await host.capabilities(refresh: refresh)
            if output.json {
                print(Render.json(caps))
            } else {
                print(Self.render(caps))
            }
        }
    }

    static func render(_ caps: Capabilities) -> String {
        func mark(_ support: Capabilities.Support) -> String {
            let word =
                switch support.status {
                case .available: "yes"
                case .unavailable: "no "
                case .unknown: "?  "
                }
            return word + (support.reason.map { "  \($0)" } ?? "")
        }
        var lines = [
            "Host:        \(caps.host) (\(caps.uri))",
            "Hypervisor:  \(caps.hypervisor) \(caps.hypervisorVersion), libvirt \(caps.libvirtVersion), driver \(caps.driver)",
            "Linux guests use domain type: \(caps.linuxDomainType ?? "none")",
            "Accelerators:",
        ]
        if caps.accelerators.isEmpty { lines.append("  (none)") }
        for accelerator in caps.accelerators {
            lines.append(
                "  \(accelerator.name) (type '\(accelerator.domainType)'), offered by libvirt: \(accelerator.offered ? "yes" : "no")"
            )
            lines.append("    runs guests:       \(mark(accelerator.runsGuests))")
            lines.append("    runs Linux guests: \(mark(accelerator.runsLinuxGuests))")
        }
        func section<K: RawRepresentable & Hashable & CaseIterable>(_ title: String, _ map: [K: Capabilities.Support])
        where K.RawValue == String {
            lines.append(title)
            for key in K.allCases {
                if let support = map[key] {
                    lines.append("  \(key.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(mark(support))")
                }
            }
        }
        section("Clone types:", caps.cloneTypes)
        section("Clone identity:", caps.cloneIdentity)
        section("Migration types:", caps.migrationTypes)
        section("Transports:", caps.transports)
        section("Security levels:", caps.securityLevels)
        section("Features:", caps.features)
        lines.append(
            "Destination formats: \(caps.destinationHostFormats.isEmpty ? "none" : caps.destinationHostFormats.map(\.rawValue).joined(separator: ", "))"
        )
        return lines.joined(separator: "\n")
    }
}
