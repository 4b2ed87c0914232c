import Foundation
internal import Libvirt

/// VIX_CLONETYPE_FULL / VIX_CLONETYPE_LINKED.
public typealias CloneType = Capabilities.CloneType

extension VirtualMachine {
    /// Clones the VM (VixVM_Clone) and returns a job whose result is the new VM, registered and
    /// shut off.
    ///
    /// - `linked`: each disk becomes a qcow2 overlay on a frozen image of the source: the
    ///   snapshot's, or — without one — an image frozen now by an external disk-only snapshot of
    ///   the source (the source, running or not, goes on writing to a new overlay of its own).
    ///   Takes milliseconds whatever the disk size.
    /// - `full`: each disk is copied into an independent image (reflink or sparse copy, or
    ///   `qemu-img convert` to flatten a chain). A running source is frozen for the copy and its
    ///   overlay merged back afterwards (active block commit): it never stops.
    ///
    /// The files are the host's: on a remote host every image is made, copied and removed there
    /// by libvirt (`HostStorage`), never at the same path on this machine.
    ///
    /// - Parameters:
    ///   - name: the clone's name (a new UUID, MACs and file names come with it).
    ///   - type: full (independent copies) or linked (overlays on frozen images).
    ///   - snapshot: clone the VM as it was at this snapshot (see `createSnapshot`).
    ///   - destination: the directory for the clone's disks; a path ending in `.vmx` (VIX's
    ///     destConfigPathName): the disks go in its folder and opening that path finds the
    ///     clone (the path is recorded, no file is written); or a path ending in `.xml` where
    ///     the clone's domain XML is written too (its disks beside it). Default: beside the
    ///     source's first disk.
    ///   - options: a new identity inside: a NoCloud seed for cloud-init (written beside the
    ///     disks as `NAME-cidata.iso` and attached as a read-only CD-ROM), or virt-sysprep on the
    ///     copied disks (see `CloneOptions`).
    /// - Throws: before the job starts: code 4 for a bad or taken name, an existing target file,
    ///   an unknown snapshot, or a bad hostname, SSH key or user-data; code 5 for a linked clone
    ///   of a VM suspended to disk; code 1 when the host cannot make this clone (for a seed, no
    ///   ISO builder here; for sysprep, no virt-sysprep, no appliance kernel, or a remote host).
    ///   The job ends with code 2 (or cancellation) after removing every file and definition it
    ///   made.
    public func clone(
        name: String, type: CloneType = .full, snapshot: String? = nil, destination: String? = nil,
        options: CloneOptions = CloneOptions()
    ) async throws(VMDriverError) -> Job<VirtualMachine> {
        // Not while another process migrates or promotes the VM (code 5 naming it). Clones of one
        // VM may run side by side, each with a record of its own.
        try await OperationClaim.check(self, clones: false)
        let plan = try await ClonePlan.make(
            source: self, name: name, type: type, snapshot: snapshot, destination: destination, options: options)
        // Its own record on the source, written before it makes anything: what a later
        // `vmctl abort` removes should this process die mid-clone.
        let record = try CloneRecord(plan)
        let handle = Subprocess.Handle(onStart: record.helperStarted, onEnd: record.helperEnded)
        return Job(
            kind: .clone, subject: "clone '\(name)' of \(label)",
            describe: { [self] in (try? await "\(label) is \(state())") ?? "" },
            onCancel: { handle.terminate() }
        ) { context throws(VMDriverError) in
            try await plan.execute(context: context, handle: handle, record: record)
        }
    }
}
