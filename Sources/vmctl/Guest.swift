import ArgumentParser
import Foundation
import VMDriver

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a VM, optionally waiting until the guest is ready.",
        discussion: """
            --wait ip waits for an address on one of its interfaces (libvirt's DHCP leases, the ARP \
            table, or qemu-guest-agent), agent for qemu-guest-agent to answer a ping, and \
            serial:PATTERN for a line matching the regular expression on its serial port (logged to a \
            file), printed by this boot. A VM that cannot show what is asked (no interface, no agent \
            channel, no serial log) is refused with code 1 before it starts. At the timeout vmctl exits \
            3 and the VM keeps running; Ctrl-C stops the wait and leaves it running, and says so.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions

    @Option(
        help: ArgumentHelp("Wait until the guest is ready: ip, agent or serial:PATTERN.", valueName: "condition"),
        transform: { text in
            guard let readiness = Readiness(parsing: text) else {
                throw ValidationError("--wait takes ip, agent or serial:PATTERN, not \(text.debugDescription)")
            }
            return readiness
        })
    var wait: Readiness?

    @Option(help: ArgumentHelp("How long to wait (seconds).", valueName: "seconds"))
    var timeout: Double = 120

    struct Result: Encodable {
        var vm: String
        var uuid: UUID
        var state: VMState
        var ready: ReadinessReport?
    }

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func run() async throws {
        if wait != nil { Interrupts.shared.arm() }
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            var report: ReadinessReport?
            if let wait {
                report = try await ProgressBar.follow(
                    try await vm.start(waitingFor: wait, timeout: .milliseconds(Int64(timeout * 1000))))
            } else {
                try await vm.start()
            }
            let state = try await vm.state()
            if output.json {
                print(Render.json(Result(vm: vm.name, uuid: vm.uuid, state: state, ready: report)))
                return
            }
            guard let report else {
                print("Started VM '\(vm.name)': it is \(state).")
                return
            }
            print("Started VM '\(vm.name)': ready (\(report.condition)) after \(String(format: "%.1f", report.seconds)) s.")
            if let line = report.line { print("  \(line)") }
            print(Render.interfaces(report.interfaces))
        }
    }
}

struct Addresses: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addresses",
        abstract: "Show a running VM's network interfaces and their addresses.",
        discussion: """
            One line per interface of the VM's definition. Without --source the DHCP leases of \
            libvirt's networks are asked first, then the host's ARP table, then qemu-guest-agent where \
            the guest runs it; each interface takes the first source that knows an address.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions

    @Option(help: ArgumentHelp("Ask only this source (repeatable): lease, arp or agent.", valueName: "source"))
    var source: [AddressSource] = []

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let interfaces = try await host.open(target.vm).addresses(from: source)
            if output.json {
                print(Render.json(interfaces))
            } else {
                print(Render.interfaces(interfaces))
            }
        }
    }
}

extension AddressSource: ExpressibleByArgument {}

extension Render {
    static func interfaces(_ interfaces: [GuestInterface]) -> String {
        if interfaces.isEmpty { return "  (no network interfaces)" }
        return interfaces.map { interface in
            let addresses =
                interface.addresses.isEmpty ? "no address yet" : interface.addresses.map(\.description).joined(separator: " ")
            let place = [interface.name, interface.network.map { "on \($0)" }].compactMap { $0 }.joined(separator: " ")
            let source = interface.source.map { " (\($0.rawValue))" } ?? ""
            return "  \(interface.mac) \(place.isEmpty ? "" : place + " ")\(addresses)\(source)"
        }.joined(separator: "\n")
    }
}
