import ArgumentParser
import Foundation
import VMDriver

struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a VM by name, UUID, or domain XML file, and show it.",
        discussion:
            "A file whose VM is not registered is registered (defined); with --transient it is started without registering.")

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(
        help: ArgumentHelp("The VM's name, its UUID, or the path of a libvirt domain XML file.", valueName: "name|uuid|path"))
    var vm: String

    @Flag(help: "Start a VM from a file without registering it.")
    var transient = false

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let opened = try await host.open(vm, transient: transient)
            let details = try await opened.details()
            if output.json {
                print(Render.json(OpenResult(origin: opened.origin, vm: details)))
            } else {
                switch opened.origin {
                case .defined: print("Registered VM '\(details.name)' from \(vm).")
                case .startedTransient: print("Started VM '\(details.name)' from \(vm) without registering it.")
                case .registered: break
                }
                print(Render.details(details))
            }
        }
    }

    struct OpenResult: Encodable {
        var origin: VirtualMachine.Origin
        var vm: VMDetails

        func encode(to encoder: any Encoder) throws {
            // The VM's fields at the top level, with how it was opened beside them.
            try vm.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(origin, forKey: .origin)
        }
        enum Key: String, CodingKey { case origin }
    }
}
