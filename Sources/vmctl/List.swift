import ArgumentParser
import Foundation
import VMDriver

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the host's VMs (running ones unless --all).")

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Flag(name: .shortAndLong, help: "Include VMs that are not running.")
    var all = false

    struct Row: Encodable {
        var name: String
        @LowercaseUUID var uuid: UUID
        var state: VMState
    }

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            var rows: [Row] = []
            for vm in try await host.list(all: all) {
                rows.append(Row(name: vm.name, uuid: vm.uuid, state: try await vm.state()))
            }
            if output.json {
                print(Render.json(rows))
            } else {
                let width = max(4, rows.map(\.name.count).max() ?? 0)
                print("NAME".padding(toLength: width, withPad: " ", startingAt: 0) + "  STATE              UUID")
                for row in rows {
                    print(
                        row.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                            + row.state.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0) + "  "
                            + row.uuid.uuidString.lowercased())
                }
            }
        }
    }
}
