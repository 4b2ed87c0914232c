import ArgumentParser
import Foundation
import VMDriver

/// The VM argument the lifecycle commands share.
struct VMArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The VM's name or UUID.", valueName: "name|uuid"))
    var vm: String
}

/// What start, destroy, suspend, save and resume print with --json.
struct LifecycleResult: Encodable {
    var vm: String
    var uuid: UUID
    var state: VMState
}

/// start, destroy, suspend, resume: one call each, then the new state.
protocol SimpleLifecycleCommand: AsyncParsableCommand {
    var root: VMCtl { get }
    var target: VMArgument { get }
    var output: OutputOptions { get }
    static var verb: String { get }
    static func act(on vm: VirtualMachine) async throws(VMDriverError)
}

extension SimpleLifecycleCommand {
    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            try await Self.act(on: vm)
            let state = try await vm.state()
            if output.json {
                print(Render.json(LifecycleResult(vm: vm.name, uuid: vm.uuid, state: state)))
            } else {
                print("\(Self.verb) VM '\(vm.name)': it is \(state).")
            }
        }
    }
}

struct Destroy: SimpleLifecycleCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy", abstract: "Stop a VM at once (pull the plug).")
    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions
    static let verb = "Destroyed"
    static func act(on vm: VirtualMachine) async throws(VMDriverError) { try await vm.destroy() }
}

struct Suspend: SimpleLifecycleCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend", abstract: "Pause a running VM.")
    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions
    static let verb = "Suspended"
    static func act(on vm: VirtualMachine) async throws(VMDriverError) { try await vm.suspend() }
}

struct Save: SimpleLifecycleCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Suspend a VM to disk (VIX's suspend): its memory is saved; start resumes it where it was.")
    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions
    static let verb = "Saved"
    static func act(on vm: VirtualMachine) async throws(VMDriverError) { try await vm.save() }
}

struct Resume: SimpleLifecycleCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume a paused VM.")
    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions
    static let verb = "Resumed"
    static func act(on vm: VirtualMachine) async throws(VMDriverError) { try await vm.resume() }
}

struct Shutdown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown",
        abstract: "Ask a VM's guest to power off and wait until it has.",
        discussion: "Exits 3 if the guest is still running at the deadline (unless --force destroys it then).")

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions

    @Option(help: ArgumentHelp("Seconds to wait for the guest.", valueName: "seconds"))
    var timeout: Double = 60

    @Flag(help: "Destroy the VM if it has not powered off by the deadline.")
    var force = false

    func validate() throws {
        // At most a year: a bigger number would overflow the milliseconds (and crash vmctl).
        guard timeout > 0, timeout <= 31_536_000 else {
            throw ValidationError("--timeout must be a positive number of seconds, at most 31536000 (a year)")
        }
    }

    struct Result: Encodable {
        var vm: String
        var state: VMState
        var seconds: Double
    }

    func run() async throws {
        Interrupts.shared.arm()
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            let job = try await vm.shutdown(timeout: .milliseconds(Int64(timeout * 1000)), force: force)
            let state = try await ProgressBar.follow(job)
            let seconds = Date().timeIntervalSince(job.startTime)
            if output.json {
                print(Render.json(Result(vm: vm.name, state: state, seconds: seconds)))
            } else {
                print("VM '\(vm.name)' is \(state) after \(String(format: "%.1f", seconds)) s.")
            }
        }
    }
}
