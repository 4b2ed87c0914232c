import Foundation

/// Copies disk images for full clones, keeping them sparse:
/// - a standalone image: one FICLONE ioctl where the filesystem shares extents (`reflink`), else
///   `cp --reflink=auto --sparse=auto` (copy_file_range in the kernel, with the source's holes
///   kept: twice as fast here as `--sparse=always`, which reads every byte to find zeros);
/// - an image with a backing chain: `qemu-img convert`, which flattens the chain into one
///   independent image and skips zeroes.
/// Progress is reported in bytes. Blocking: runs on the pool.
enum DiskCopier {
    struct Plan: Sendable {
        var source: String
        var target: String
        /// The format to write (qcow2 stays qcow2, raw stays raw).
        var format: String
        /// The source has a backing chain that must be flattened.
        var flatten: Bool
        /// Bytes the copy will write, for progress: the allocated size of the chain.
        var bytes: UInt64
    }

    static func allocatedBytes(_ path: String) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return UInt64(info.st_blocks) * 512
    }

    /// Copies one image into `plan.target`, which `LocalImages.reserve` made (mode 0600 from
    /// the first byte: the copy is the guest's data). `progress` gets the bytes written so far.
    static func copy(_ plan: Plan, handle: Subprocess.Handle, progress: @escaping @Sendable (UInt64) -> Void)
        throws(VMDriverError)
    {
        let output: Subprocess.Output
        do {
            if plan.flatten {
                guard let qemuImg = Subprocess.which("qemu-img") else {
                    throw VMDriverError(.notSupported, "flattening \(plan.source) needs qemu-img (apt-get install qemu-utils)")
                }
                // -U: the source may be the frozen base of a running VM. -p prints "(NN.NN/100%)".
                output = try Subprocess.run(
                    qemuImg, ["convert", "-U", "-p", "-O", plan.format, "--", plan.source, plan.target], handle: handle
                ) { text in
                    if let percent = Self.lastPercent(in: text) {
                        progress(UInt64(Double(plan.bytes) * percent / 100))
                    }
                }
            } else if try reflink(plan) {
                progress(plan.bytes)
                return
            } else {
                guard let cp = Subprocess.which("cp") else {
                    throw VMDriverError(.notSupported, "copying \(plan.source) needs cp (coreutils)")
                }
                // cp says nothing while it works: watch the target grow instead.
                let watcher = DispatchSource.makeTimerSource()
                watcher.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
                watcher.setEventHandler { progress(min(Self.allocatedBytes(plan.target), plan.bytes)) }
                watcher.resume()
                defer { watcher.cancel() }
                output = try Subprocess.run(
                    cp, ["--reflink=auto", "--sparse=auto", "--no-preserve=all", "--", plan.source, plan.target],
                    handle: handle)
            }
        } catch let error as VMDriverError {
            throw error
        } catch {
            throw VMDriverError(.failed, "cannot copy \(plan.source): \(error)", cause: error)
        }
        if handle.wasTerminated {
            throw VMDriverError(.failed, "copying \(plan.source) was cancelled")
        }
        guard output.status == 0 else {
            throw VMDriverError(.failed, "copying \(plan.source) to \(plan.target) failed: \(output.stderr)")
        }
        progress(plan.bytes)
    }

    /// Shares the source's extents with the target in one FICLONE ioctl, where the filesystem
    /// can (XFS with reflink, Btrfs, bcachefs, OCFS2): what `cp --reflink=auto` does first, without
    /// starting cp, which costs several times the clone itself. The target is the reserved empty
    /// file; holes stay holes. False, having changed nothing, where the filesystem cannot (or the
    /// two files are on different filesystems): the caller copies.
    static func reflink(_ plan: Plan) throws(VMDriverError) -> Bool {
        let source = open(plan.source, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { return false }
        defer { close(source) }
        let target = open(plan.target, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard target >= 0 else { return false }
        defer { close(target) }
        // FICLONE, _IOW(0x94, 9, int) in <linux/fs.h>.
        let ficlone: UInt = 0x4004_9409
        if ioctl(target, ficlone, source) == 0 {
            // Durable like a copy followed by sync: the shared extents are in the target's metadata.
            guard fsync(target) == 0 else {
                throw VMDriverError(
                    .failed, "cannot flush the reflinked copy \(plan.target): \(String(cString: strerror(errno)))")
            }
            return true
        }
        switch errno {
        case EOPNOTSUPP, ENOTTY, EXDEV, EINVAL, EPERM, ENOSYS, ETXTBSY: return false
        default:
            throw VMDriverError(
                .failed, "cannot reflink \(plan.source) into \(plan.target): \(String(cString: strerror(errno)))")
        }
    }

    /// The last "(NN.NN/100%)" in qemu-img's progress output.
    static func lastPercent(in text: String) -> Double? {
        guard let open = text.range(of: "(", options: .backwards),
            let slash = text[open.upperBound...].firstIndex(of: "/")
        else { return nil }
        return Double(text[open.upperBound..<slash])
    }
}
