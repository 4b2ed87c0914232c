import ArgumentParser
import Foundation
import VMDriver

struct Convert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Copy a shut-off VM's disks to qcow2 (or raw) images it then uses; the old images are kept.",
        discussion: """
            Each disk whose chain holds an image in another format (a .vmx's vmdk, a raw image) is \
            copied into one standalone, sparse image beside it (disk.vmdk -> disk.qcow2), with \
            progress; then the VM is pointed at the copies. QEMU live-migrates no VM with a vmdk \
            disk: after this it moves hot or warm. Ctrl-C stops the copy and removes what was made; \
            the VM is unchanged until the end.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @Option(help: ArgumentHelp("The format to copy the disks to: qcow2 or raw.", valueName: "format"))
    var format = "qcow2"

    @OptionGroup var output: OutputOptions

    func run() async throws {
        Interrupts.shared.arm()
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            let converted = try await Self.convert(vm, to: format)
            if output.json {
                print(Render.json(converted))
            } else {
                Self.render(converted, vm: vm.name)
            }
        }
    }

    static func render(_ converted: DiskConversion, vm: String) {
        guard !converted.converted.isEmpty else {
            print(
                "Nothing to convert: every disk of '\(vm)' is \(converted.format) already (\(converted.unchanged.joined(separator: ", ")))."
            )
            return
        }
        print("Converted the disks of '\(vm)' to \(converted.format):")
        for disk in converted.converted {
            print(
                "  \(disk.target): \(disk.from) (\(disk.formats.joined(separator: " on "))) -> \(disk.to), \(ProgressBar.size(disk.bytes))"
            )
        }
        for target in converted.unchanged { print("  \(target): \(converted.format) already, unchanged") }
        print("Kept (delete them once nothing needs them): \(converted.kept.joined(separator: ", "))")
    }

    /// Runs the conversion with its progress bar (`convert`, and `open --convert`).
    static func convert(_ vm: VirtualMachine, to format: String) async throws(VMDriverError) -> DiskConversion {
        try await ProgressBar.follow(try await vm.convertDisks(to: format))
    }
}
