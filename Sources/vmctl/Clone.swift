import ArgumentParser
import Foundation
import VMDriver

struct Clone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone",
        abstract: "Clone a VM: a full copy, or a linked clone on a frozen image of it.",
        discussion: """
            A linked clone's disks are qcow2 overlays on the source's frozen images: without --snapshot \
            the source is snapshotted first (it goes on writing to a new overlay). A full clone copies \
            every disk; a running source never stops. A clone is its source inside (hostname, machine-id, \
            SSH host keys) unless it is given a new identity: --hostname, --ssh-key, --user-data or \
            --network-config attach a NoCloud seed (NAME-cidata.iso beside its disks, a read-only CD-ROM \
            labelled cidata whose meta-data holds a new instance-id and the hostname) that cloud-init in the \
            guest reads on its first boot; --sysprep resets the identity in the disks with virt-sysprep, for \
            guests without cloud-init (vmctl caps tells whether this host can).
            """)

    @ParentCommand var root: VMCtl
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The VM to clone (name or UUID).", valueName: "source"))
    var source: String

    @Argument(help: ArgumentHelp("The clone's name.", valueName: "new-name"))
    var name: String

    @Flag(help: "A full (independent) clone, the default, or a linked one.")
    var type: CloneType = .full

    @Option(help: ArgumentHelp("Clone the VM as it was at this snapshot.", valueName: "name"))
    var snapshot: String?

    @Option(
        help: ArgumentHelp("Directory for the clone's disks, or a path ending in .xml for its domain XML too.", valueName: "path")
    )
    var dest: String?

    @Flag(help: "Start the clone once it is made.")
    var start = false

    @OptionGroup(title: "Identity inside the clone") var identity: IdentityOptions

    struct Result: Encodable {
        var clone: VMDetails
        var type: CloneType
        var seconds: Double
    }

    func run() async throws {
        Interrupts.shared.arm()
        try await root.connection.withHost { host async throws(VMDriverError) in
            let options = try identity.cloneOptions()
            let vm = try await host.open(source)
            let job = try await vm.clone(name: name, type: type, snapshot: snapshot, destination: dest, options: options)
            let clone = try await ProgressBar.follow(job)
            if start { try await clone.start() }
            let details = try await clone.details()
            let seconds = Date().timeIntervalSince(job.startTime)
            if output.json {
                print(Render.json(Result(clone: details, type: type, seconds: seconds)))
            } else {
                print("Made \(type.rawValue) clone '\(details.name)' of '\(vm.name)' in \(String(format: "%.2f", seconds)) s.")
                print(Render.details(details))
            }
        }
    }
}

struct IdentityOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("The clone's hostname, given to cloud-init by a NoCloud seed (default: its name).", valueName: "name"))
    var hostname: String?

    @Option(
        name: .customLong("ssh-key"),
        help: ArgumentHelp("An SSH public key file for the seed's public-keys (repeatable).", valueName: "file"))
    var sshKeys: [String] = []

    @Option(help: ArgumentHelp("The seed's user-data (#cloud-config …), verbatim.", valueName: "file"))
    var userData: String?

    @Option(help: ArgumentHelp("The seed's network-config (cloud-init's version 1 or 2), verbatim.", valueName: "file"))
    var networkConfig: String?

    @Flag(help: "Reset machine-id, SSH host keys and hostname in the clone's disks with virt-sysprep.")
    var sysprep = false

    /// The options, with the files read (on this machine: they are the caller's, wherever the
    /// host is). A file that cannot be read is code 4 naming it.
    func cloneOptions() throws(VMDriverError) -> CloneOptions {
        func read(_ path: String, _ what: String) throws(VMDriverError) -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw VMDriverError(.invalidParameter, "cannot read the \(what) file \(path): \(error.localizedDescription)")
            }
        }
        var keys: [String] = []
        for file in sshKeys {
            let lines = try read(file, "SSH key").split(whereSeparator: \.isNewline).map(String.init)
                .filter { !$0.allSatisfy(\.isWhitespace) && !$0.hasPrefix("#") }
            if lines.isEmpty { throw VMDriverError(.invalidParameter, "the SSH key file \(file) holds no key") }
            for line in lines {
                if let problem = CloneOptions.publicKeyProblem(line) {
                    throw VMDriverError(.invalidParameter, "the SSH key file \(file) \(problem)")
                }
            }
            keys += lines
        }
        return CloneOptions(
            hostname: hostname, sshKeys: keys,
            userData: try userData.map { path throws(VMDriverError) in try read(path, "user-data") },
            networkConfig: try networkConfig.map { path throws(VMDriverError) in try read(path, "network-config") },
            sysprep: sysprep)
    }
}

extension CloneType: EnumerableFlag {
    public static func name(for value: CloneType) -> NameSpecification { .customLong(value.rawValue) }
}

struct Promote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Turn a linked clone into a standalone VM (its parent may then be deleted).")

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions

    func run() async throws {
        Interrupts.shared.arm()
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            _ = try await ProgressBar.follow(try await vm.promote())
            if output.json {
                print(Render.json(try await vm.details()))
            } else {
                print("VM '\(vm.name)' is standalone now.")
            }
        }
    }
}

struct Clones: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clones", abstract: "List the linked clones that rest on a VM's disks.")

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let clones = try await host.open(target.vm).linkedClones()
            if output.json {
                print(Render.json(clones))
            } else {
                clones.forEach { print($0) }
            }
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Remove a VM from the host.",
        discussion:
            "Refused (exit 5) while linked clones rest on its disks, unless --force; images other VMs use are never deleted.")

    @ParentCommand var root: VMCtl
    @OptionGroup var target: VMArgument

    @Flag(help: "Delete its disk images and NVRAM too.")
    var withStorage = false

    @Flag(help: "Delete it even though linked clones rest on its disks (their images are kept).")
    var force = false

    @OptionGroup var output: OutputOptions

    struct Deleted: Encodable {
        var vm: String
        var uuid: UUID
        /// The files deleted with it.
        var removed: [String]
    }

    func run() async throws {
        try await root.connection.withHost { host async throws(VMDriverError) in
            let vm = try await host.open(target.vm)
            let removed = try await vm.delete(withStorage: withStorage, force: force)
            if output.json {
                print(Render.json(Deleted(vm: vm.name, uuid: vm.uuid, removed: removed)))
                return
            }
            print("Deleted VM '\(vm.name)'.")
            for file in removed { print("  removed \(file)") }
        }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Disk-only snapshots, the frozen images linked clones rest on.",
        subcommands: [Create.self, List.self, Revert.self, Delete.self])

    @ParentCommand var root: VMCtl

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Freeze a VM's disks (it goes on writing to new overlays).")
        @ParentCommand var parent: Snapshot
        @OptionGroup var target: VMArgument
        @Argument(help: "The snapshot's name.") var name: String
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await parent.root.connection.withHost { host async throws(VMDriverError) in
                let info = try await host.open(target.vm).createSnapshot(name: name)
                if output.json { print(Render.json(info)) } else { print(Render.snapshot(info)) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List a VM's snapshots.")
        @ParentCommand var parent: Snapshot
        @OptionGroup var target: VMArgument
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await parent.root.connection.withHost { host async throws(VMDriverError) in
                let list = try await host.open(target.vm).snapshots()
                if output.json { print(Render.json(list)) } else { list.forEach { print(Render.snapshot($0)) } }
            }
        }
    }

    struct Revert: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revert",
            abstract: "Take a shut-off VM back to a snapshot (what it wrote since is discarded).",
            discussion: """
                Each disk the snapshot froze gets a new empty overlay on the image it froze; the overlays \
                the VM wrote to since are deleted once its definition points at the new ones (not those \
                another snapshot froze or another VM uses). The VM stays shut off: the snapshot holds its \
                disks, not its memory. A running VM is refused with code 5.
                """)
        @ParentCommand var parent: Snapshot
        @OptionGroup var target: VMArgument
        @Argument(help: "The snapshot's name.") var name: String
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await parent.root.connection.withHost { host async throws(VMDriverError) in
                let reverted = try await host.open(target.vm).revert(toSnapshot: name)
                if output.json {
                    print(Render.json(reverted))
                    return
                }
                print("Reverted '\(target.vm)' to snapshot '\(name)'; it is shut off.")
                for disk in reverted.snapshot.disks {
                    print("  \(disk.target): new overlay \(disk.overlay) on \(disk.frozenImage ?? "?")")
                }
                for file in reverted.discarded { print("  discarded \(file)") }
                for file in reverted.leftOver { print("  left \(file)") }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Forget a snapshot (its files stay: they are part of the VM's disk chain).")
        @ParentCommand var parent: Snapshot
        @OptionGroup var target: VMArgument
        @Argument(help: "The snapshot's name.") var name: String
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await parent.root.connection.withHost { host async throws(VMDriverError) in
                let vm = try await host.open(target.vm)
                try await vm.deleteSnapshot(name: name)
                if output.json {
                    print(Render.json(["vm": vm.name, "deletedSnapshot": name]))
                } else {
                    print("Deleted snapshot '\(name)' of '\(vm.name)'.")
                }
            }
        }
    }
}
