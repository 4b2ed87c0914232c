import ArgumentParser
import Foundation
import Logging
import VMDriver

@main
struct VMCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmctl",
        abstract: "Open, clone and migrate VMs on KVM/QEMU hosts through libvirt.",
        discussion: """
            Exit status is the CIM return code: 0 completed, 1 not supported, 2 failed, 3 timeout, \
            4 invalid parameter, 5 invalid state, 6 incompatible parameters.
            """,
        version: VMDriverVersion.current,
        subcommands: [
            Open.self, List.self, Start.self, Shutdown.self, Destroy.self, Suspend.self, Save.self, Resume.self, Caps.self,
            Clone.self, Clones.self, Promote.self, Convert.self, Delete.self, Snapshot.self, Migrate.self, Evacuate.self,
            Watch.self, Addresses.self,
            Jobs.self, Abort.self,
        ]
    )

    /// `--connect` and `--verbose` belong to vmctl itself and may stand before or after the subcommand.
    @OptionGroup var connection: ConnectionOptions

    /// As ArgumentParser's own main, except that a malformed command line exits 4 (CIM's
    /// "invalid parameter") rather than 64, so every refusal speaks the same codes.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let status = exitCode(for: error)
            if status == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                exit(withError: ExitCode(ReturnCode.invalidParameter.exitStatus))
            }
            exit(withError: error)
        }
    }
}

/// `--connect`, shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "libvirt URI of the host (default: $VMDRIVER_CONNECT, $LIBVIRT_DEFAULT_URI, then qemu:///system).",
            valueName: "uri"))
    var connect: String?

    @Flag(name: .shortAndLong, help: "Log what VMDriver does on stderr.")
    var verbose = false

    var uri: String {
        let environment = ProcessInfo.processInfo.environment
        return connect ?? environment["VMDRIVER_CONNECT"] ?? environment["LIBVIRT_DEFAULT_URI"] ?? "qemu:///system"
    }

    func host() async throws(VMDriverError) -> VMDriver.Host {
        _ = loggingBootstrap
        var logger = Logger(label: "vmctl")
        logger.logLevel = verbose ? .debug : .warning
        return try await VMDriver.Host.connect(uri, logger: logger)
    }

    /// Connects, runs `body` with the host, closes the connection (after a failure too), and
    /// reports a failure as vmctl does: the message on stderr, the CIM code as exit status.
    func withHost(_ body: (VMDriver.Host) async throws(VMDriverError) -> Void) async throws {
        try await reporting { () async throws(VMDriverError) in
            let host = try await host()
            do throws(VMDriverError) {
                try await body(host)
            } catch {
                try? await host.close()
                throw error
            }
            try await host.close()
        }
    }
}

/// `--json`, for commands that print a result.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the result as JSON.")
    var json = false
}

/// Runs a subcommand's body; a `VMDriverError` becomes its message on stderr and the code as
/// the exit status.
func reporting(_ body: () async throws(VMDriverError) -> Void) async throws {
    do {
        try await body()
    } catch {
        FileHandle.standardError.write(Data("vmctl: \(error.message) (code \(error.code.rawValue): \(error.code))\n".utf8))
        throw ExitCode(error.code.exitStatus)
    }
}

/// swift-log goes to stderr, so stdout carries only results (and stays valid JSON with --json).
private let loggingBootstrap: Void = LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
