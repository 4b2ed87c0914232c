import Foundation
internal import Libvirt

/// The files of the host a `Host` is connected to: disk images, folders, the odd small file.
/// `Host.connect` picks one implementation, once: `LocalStorage` when the host is this machine
/// (files, `qemu-img`, `cp`), `RemoteStorage` when it is another one (libvirt's storage pools,
/// volumes and streams only: never a file of this machine). Operations ask this seam and never
/// reach for `FileManager` or `qemu-img` themselves.
///
/// Every method blocks: call it from the blocking pool (`Host.blocking`).
protocol HostStorage: Sendable {
    /// How the host's clone types are made, for `Capabilities` (a QEMU host).
    var cloneTypes: [Capabilities.CloneType: Capabilities.Support] { get }

    /// The code for an image that cannot be read: a failure here, something the host does not
    /// offer (no storage pool can reach it) on a remote host.
    var unreadableImageCode: ReturnCode { get }

    /// Whether a file (or folder) is at `path`.
    func exists(_ path: String) -> Bool

    /// What is at `path`.
    func kind(of path: String) -> PathKind

    /// The image's format and backing chain, read from the image.
    func inspect(_ path: String) -> ImageInspector.Result

    /// Bytes the image takes on disk (0 when it cannot be told).
    func allocatedBytes(_ path: String) -> UInt64

    /// Whether a qcow2 overlay holds no data of its own; false when it cannot be told.
    func overlayIsEmpty(_ path: String) -> Bool

    /// Makes the folder (with its parents) unless it exists; true when it was made.
    func makeFolder(_ path: String) throws(VMDriverError) -> Bool

    /// Creates a qcow2 overlay at `overlay` over `base`, mode 0600. `created` is called once the
    /// file is VMDriver's (from then on a rollback may remove it); an existing file is refused.
    func createOverlay(_ overlay: String, base: String, baseFormat: String, created: () -> Void) throws

    /// Copies an image into `plan.target` (new, mode 0600), flattening its chain when
    /// `plan.flatten`. `created` as for `createOverlay`; `progress` gets bytes written so far.
    func copyImage(
        _ plan: DiskCopier.Plan, handle: Subprocess.Handle, created: () -> Void,
        progress: @escaping @Sendable (UInt64) -> Void
    ) throws

    /// Makes an overlay standalone: its backing data is copied into it, its path stays.
    func flatten(_ path: String, format: String) throws

    /// Leaves a file readable and writable by its owner only, where the seam can.
    func restrictToOwner(_ path: String)

    /// Writes a new small file (a domain XML), mode 0600. `created` as for `createOverlay`.
    func write(_ data: Data, to path: String, created: () -> Void) throws

    /// Deletes a file, or an empty folder.
    func delete(_ path: String) throws

    /// Opens an image for reading its bytes (holes as holes); also gives its volume when a
    /// storage pool has it.
    func reader(_ path: String) throws -> (ByteReader, StorageVolume?)
}

/// What a path names on the host.
enum PathKind: Equatable {
    case directory
    case other
    case missing
}
