import ArgumentParser
import Foundation
import VMDriver

struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Open a VM by name, UUID, domain XML file or VMware .vmx file, and show it.",
        discussion: """
            A file whose VM is not registered is registered (defined); with --transient a domain XML file is started \
            without registering. A .vmx is mapped to what KVM runs: its .vmdk disks are used in place, uuid.bios \
            becomes the VM's UUID, and the keys that were not mapped are listed. Opening the same .vmx again finds \
            the same VM.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(
        help: ArgumentHelp(
            "The VM's name, its UUID, or the path of a libvirt domain XML file or a .vmx.", valueName: "name|uuid|path"))
    var vm: String

    @Flag(help: "Start a VM from a domain XML file without registering it.")
    var transient = false

    @Option(
        help: ArgumentHelp(
            "For a .vmx: the libvirt network its NICs join (default: 'default' if it is active, else no NIC).",
            valueName: "network"))
    var network: String?

    @Option(
        help: ArgumentHelp(
            "Copy its disks to this format (qcow2 or raw) once it is registered, as `vmctl convert` does: "
                + "a .vmx's vmdk disks then migrate hot and warm.", valueName: "format"))
    var convert: String?

    func run() async throws {
        if convert != nil { Interrupts.shared.arm() }
        try await root.connection.withHost { host async throws(VMDriverError) in
            let opened = try await host.open(vm, transient: transient, network: network)
            var converted: DiskConversion?
            if let convert {
                converted = try await Convert.convert(opened, to: convert)
            }
            let details = try await opened.details()
            if output.json {
                print(
                    Render.json(
                        OpenResult(
                            origin: opened.origin, vm: details, unmappedKeys: opened.unmappedKeys, notes: opened.notes,
                            conversion: converted)))
            } else {
                switch opened.origin {
                case .defined: print("Registered VM '\(details.name)' from \(vm).")
                case .startedTransient: print("Started VM '\(details.name)' from \(vm) without registering it.")
                case .registered: break
                }
                print(Render.details(details))
                for note in opened.notes { print("Note: \(note)") }
                if !opened.unmappedKeys.isEmpty {
                    print("Not mapped (\(opened.unmappedKeys.count) keys): \(opened.unmappedKeys.joined(separator: ", "))")
                }
                if let converted { Convert.render(converted, vm: details.name) }
            }
        }
    }

    struct OpenResult: Encodable {
        var origin: VirtualMachine.Origin
        var vm: VMDetails
        var unmappedKeys: [String]
        var notes: [String]
        var conversion: DiskConversion?

        func encode(to encoder: any Encoder) throws {
            // The VM's fields at the top level, with how it was opened beside them.
            try vm.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(origin, forKey: .origin)
            if !unmappedKeys.isEmpty || !notes.isEmpty {
                try container.encode(unmappedKeys, forKey: .unmappedKeys)
                try container.encode(notes, forKey: .notes)
            }
            try container.encodeIfPresent(conversion, forKey: .conversion)
        }
        enum Key: String, CodingKey { case origin, unmappedKeys, notes, conversion }
    }
}
