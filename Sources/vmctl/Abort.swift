import ArgumentParser
import Foundation
import VMDriver

struct Abort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Abort the job running on a VM, whichever process started it, and clean up after it.",
        discussion: """
            Aborts libvirt's job (virDomainAbortJob). If VMDriver's record says a vmctl that is still running owns the \
            job, that vmctl rolls back by itself: abort waits for it. If that vmctl is gone (killed), abort does its \
            rollback: it removes the images and transient pools the record lists on the target, then the record. \
            Clones being made of the VM each leave a record of their own. A clone whose vmctl runs on this machine is \
            sent SIGTERM (that vmctl cancels it and rolls back); one whose vmctl is gone is rolled back from its record: \
            its copy processes are stopped, a running source's temporary overlays are merged back, and the files it \
            made are removed. A clone that had completed stays.
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The VM (name or UUID).", valueName: "vm")) var vm: String

    @Flag(help: "Clean up even though the owner may still run (on another machine, where this one cannot tell).")
    var force = false

    @Option(help: ArgumentHelp("How long to wait for the job and the owner's rollback to end.", valueName: "s"))
    var wait: Double = 15

    func validate() throws {
        if !(wait > 0 && wait <= 3600) { throw ValidationError("--wait must be a positive number of seconds, at most 3600") }
    }

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let machine = try await host.open(vm)
            let result = try await machine.abortJob(force: force, wait: .milliseconds(Int64(wait * 1000)))
            if output.json {
                print(Render.json(result))
                return
            }
            print("VM '\(result.vm)':")
            for step in result.steps { print("  - \(step)") }
            if !result.removed.isEmpty { print("Removed: \(result.removed.joined(separator: ", ")).") }
        }
    }
}
