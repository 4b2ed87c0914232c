import Foundation

/// What VMDriver writes into a VM's libvirt metadata while it runs a long operation on it (a
/// migration, a promotion, a clone): which operation, the process that runs it, where to, and
/// what it made. It outlives the process: a `vmctl` killed mid-operation leaves it behind, and
/// `VirtualMachine.abortJob()` reads it to finish that process's rollback. A migration's or a
/// promotion's record is also the lock that keeps a second process from starting another
/// operation on the same VM; clones of one VM run side by side, each with a record of its own.
public struct OperationRecord: Sendable, Codable, Equatable {
    /// The process that runs the operation.
    public struct Owner: Sendable, Codable, Equatable {
        public var pid: Int32
        /// Clock ticks after boot (field 22 of /proc/PID/stat): a pid used again later by
        /// another process has another start time.
        public var startTime: UInt64
        /// /proc/sys/kernel/random/boot_id of the machine the process runs on.
        public var bootID: String
        /// That machine's node name.
        public var machine: String
        /// The program's name (`vmctl`).
        public var program: String
    }

    /// Whether the owner still runs, as far as this machine can tell.
    public enum OwnerStatus: String, Sendable, Codable {
        /// It runs: it will commit or roll back by itself.
        case alive
        /// It has ended without removing the record (killed, crashed, the machine rebooted).
        case gone
        /// It ran on another machine: this one cannot tell.
        case unknown
    }

    /// A transient storage pool VMDriver started on the target (for a home folder).
    public struct Pool: Sendable, Codable, Equatable {
        public var name: String
        /// VMDriver made the folder too (and removes it again on a rollback, if it is empty).
        public var madeFolder: Bool
    }

    /// A temporary overlay a full clone gave a running source for the copy: the source writes
    /// into it while its disk is copied, and it is merged back (block commit) afterwards.
    public struct Merge: Sendable, Codable, Equatable {
        /// The guest device (vda).
        public var disk: String
        public var overlay: String
    }

    /// A process the operation started (a copy's `cp` or `qemu-img`), in its own process group.
    public struct Helper: Sendable, Codable, Equatable {
        public var pid: Int32
        public var startTime: UInt64
    }

    public var operation: JobKind
    public var owner: Owner
    public var started: Date
    /// The name of the host the operation runs from (libvirt's host name).
    public var source: String
    /// The target's libvirt URI (as VMDriver connected to it), once known.
    public var target: String?
    /// The new VM's name: on the target for a migration, the clone's for a clone.
    public var targetName: String?
    /// The UUID a clone is defined with: a VM with it exists once the clone has completed.
    public var cloneUUID: UUID?
    /// Images VMDriver created on the target, by path: removed when the operation rolls back.
    public var images: [String] = []
    /// Transient pools VMDriver started on the target.
    public var pools: [Pool] = []
    /// Files a clone makes on the VM's own host, in the order it makes them (a folder first,
    /// if it made one): removed, newest first, when the clone rolls back. Written before the
    /// clone makes any of them; each was checked not to exist then.
    public var files: [String] = []
    /// Temporary overlays a running source writes into while a full clone copies its disks.
    public var merges: [Merge] = []
    /// The processes the operation runs now (stopped when its owner is gone).
    public var helpers: [Helper] = []

    /// The owner's state, seen from this machine.
    public var ownerStatus: OwnerStatus {
        switch identity.liveness() {
        case .alive: .alive
        case .gone: .gone
        case .unknown: .unknown
        }
    }

    var identity: ProcessIdentity {
        ProcessIdentity(pid: owner.pid, startTime: owner.startTime, bootID: owner.bootID, machine: owner.machine)
    }

    /// "vmctl (pid 4242)", or with the machine when it is another one.
    var ownerDescription: String {
        let elsewhere = owner.machine != ProcessIdentity.machineName() ? " on \(owner.machine)" : ""
        return "\(owner.program) (pid \(owner.pid)\(elsewhere))"
    }

    /// "a migration to qemu+tcp://hostb/system".
    var operationDescription: String {
        let what =
            switch operation {
            case .migrate: "a migration"
            case .clone: "a clone"
            case .promote: "a promotion"
            case .convert: "a disk conversion"
            case .shutdown: "a shutdown"
            case .start: "a start"
            }
        if operation == .clone, let targetName { return "\(what) '\(targetName)'" }
        return target.map { "\(what) to \($0)" } ?? what
    }
}

extension OperationRecord {
    /// The XML namespace of VMDriver's element in a domain's `<metadata>` (under the reserved
    /// .invalid top-level domain: a name, not an address anything is fetched from).
    static let namespace = "http://vmdriver.invalid/xmlns/operation/1"
    /// The prefix libvirt writes the element with.
    static let prefix = "vmdriver"

    /// A record for an operation this process starts now.
    init(operation: JobKind, source: String, target: String? = nil) throws(VMDriverError) {
        guard let me = ProcessIdentity.current else {
            throw VMDriverError(.notSupported, "cannot tell who this process is: /proc is not readable")
        }
        self.init(
            operation: operation,
            owner: Owner(
                pid: me.pid, startTime: me.startTime, bootID: me.bootID, machine: me.machine,
                program: ProcessInfo.processInfo.processName),
            started: Date(), source: source, target: target)
    }

    /// The element libvirt stores (without its prefix: libvirt adds it).
    var xml: String {
        let root = XMLTree(name: "operation")
        root.set("kind", operation.rawValue)
        root.set("started", started.formatted(.iso8601))
        root.set("source", source)
        if let target { root.set("target", target) }
        if let targetName { root.set("target-name", targetName) }
        root.append(
            "owner",
            attributes: [
                ("pid", String(owner.pid)), ("start-time", String(owner.startTime)), ("boot-id", owner.bootID),
                ("machine", owner.machine), ("program", owner.program),
            ])
        for image in images { root.append("image", attributes: [("path", image)]) }
        for pool in pools {
            root.append("pool", attributes: [("name", pool.name), ("made-folder", pool.madeFolder ? "yes" : "no")])
        }
        if let cloneUUID { root.set("clone-uuid", cloneUUID.uuidString.lowercased()) }
        for file in files { root.append("file", attributes: [("path", file)]) }
        for merge in merges { root.append("merge", attributes: [("disk", merge.disk), ("overlay", merge.overlay)]) }
        for helper in helpers {
            root.append("helper", attributes: [("pid", String(helper.pid)), ("start-time", String(helper.startTime))])
        }
        return root.serialized()
    }

    /// Reads the element libvirt gives back; nil for one VMDriver did not write (or cannot read).
    init?(xml text: String) {
        guard let root = try? XMLTree.parse(text), Self.local(root.name) == "operation" else { return nil }
        func children(_ name: String) -> [XMLTree] { root.children.filter { Self.local($0.name) == name } }
        guard let kind = root.attributes["kind"].flatMap(JobKind.init(rawValue:)),
            let started = root.attributes["started"].flatMap({ try? Date($0, strategy: .iso8601) }),
            let source = root.attributes["source"], let owner = children("owner").first,
            let pid = owner.attributes["pid"].flatMap({ Int32($0) }),
            let startTime = owner.attributes["start-time"].flatMap({ UInt64($0) }), let boot = owner.attributes["boot-id"]
        else { return nil }
        self.init(
            operation: kind,
            owner: Owner(
                pid: pid, startTime: startTime, bootID: boot, machine: owner.attributes["machine"] ?? "",
                program: owner.attributes["program"] ?? "a process"),
            started: started, source: source, target: root.attributes["target"], targetName: root.attributes["target-name"],
            images: children("image").compactMap { $0.attributes["path"] },
            pools: children("pool").compactMap { pool in
                pool.attributes["name"].map { Pool(name: $0, madeFolder: pool.attributes["made-folder"] == "yes") }
            },
            files: children("file").compactMap { $0.attributes["path"] },
            merges: children("merge").compactMap { merge in
                guard let disk = merge.attributes["disk"], let overlay = merge.attributes["overlay"] else { return nil }
                return Merge(disk: disk, overlay: overlay)
            },
            helpers: children("helper").compactMap { helper in
                guard let pid = helper.attributes["pid"].flatMap({ Int32($0) }),
                    let start = helper.attributes["start-time"].flatMap({ UInt64($0) })
                else { return nil }
                return Helper(pid: pid, startTime: start)
            })
        cloneUUID = root.attributes["clone-uuid"].flatMap(UUID.init(uuidString:))
    }

    /// An element's name without its namespace prefix.
    private static func local(_ name: String) -> Substring {
        name.split(separator: ":").last ?? Substring(name)
    }
}
