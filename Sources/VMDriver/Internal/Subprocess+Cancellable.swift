import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension Subprocess {
    /// A child process that can be stopped from another task (a cancelled job).
    final class Handle: Sendable {
        /// The running child's pid, 0 when none runs.
        private let pid = Mutex<pid_t>(0)
        private let stopped = Atomic(false)
        /// Told of each child when it starts and when it has ended (before it is reaped), on
        /// the thread that runs it: a clone records its copy processes for a later rollback.
        private let onStart: (@Sendable (pid_t) -> Void)?
        private let onEnd: (@Sendable (pid_t) -> Void)?

        init(onStart: (@Sendable (pid_t) -> Void)? = nil, onEnd: (@Sendable (pid_t) -> Void)? = nil) {
            (self.onStart, self.onEnd) = (onStart, onEnd)
        }

        func attach(_ child: pid_t) {
            pid.withLock { $0 = child }
            onStart?(child)
            if stopped.load(ordering: .acquiring) { terminate() }
        }

        /// The child was reaped: its pid may belong to someone else from now on.
        func detach() {
            let child = pid.withLock { child in
                defer { child = 0 }
                return child
            }
            if child > 0 { onEnd?(child) }
        }

        /// Sends SIGTERM to the child's process group (the child and what it started), now or
        /// as soon as it starts. The pid is never one that was reaped: `run` detaches it first.
        func terminate() {
            stopped.store(true, ordering: .releasing)
            pid.withLock { child in
                if child > 0 { kill(-child, SIGTERM) }
            }
        }

        var wasTerminated: Bool { stopped.load(ordering: .acquiring) }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var executable: String
        var errno: Int32
        var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
    }

    /// Pipes are made and marked close-on-exec under this lock, and children started under it,
    /// so no child of another thread inherits a pipe of ours (and keeps it open past our child).
    private static let spawnLock = Mutex(())

    /// Starts `executable`; returns its pid and the read ends of its stdout and stderr.
    private static func spawn(_ executable: String, _ arguments: [String]) throws -> (pid_t, Int32, Int32) {
        var made: [Int32] = []
        func pipeEnds() throws -> (read: Int32, write: Int32) {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { throw SpawnError(executable: executable, errno: errno) }
            made += ends
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            return (ends[0], ends[1])
        }
        do {
            let out = try pipeEnds()
            let err = try pipeEnds()
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, out.write, 1)
            posix_spawn_file_actions_adddup2(&actions, err.write, 2)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            // The child starts with default signal handling and an empty mask, whatever ours are.
            var none = sigset_t()
            var all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            // A process group of its own: a terminal's Ctrl-C reaches vmctl, not the child;
            // vmctl cancels the job, and the job stops the child through its handle.
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(
                &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
            let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var child: pid_t = 0
            let status = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
            close(out.write)
            close(err.write)
            made = [out.read, err.read]
            guard status == 0 else { throw SpawnError(executable: executable, errno: status) }
            return (child, out.read, err.read)
        } catch {
            made.forEach { close($0) }
            throw error
        }
    }

    /// Like `run`, but the child can be stopped through `handle`, and `onStdout` sees its
    /// standard output as it comes (qemu-img's progress). The child is started with
    /// `posix_spawn` and an argument array (never a shell), standard input from /dev/null, and
    /// no descriptor of ours but its two pipes (all others are close-on-exec). Blocking: call
    /// from the pool.
    static func run(
        _ executable: String, _ arguments: [String], handle: Handle, onStdout: (String) -> Void = { _ in }
    ) throws -> Output {
        let (child, out, err) = try spawnLock.withLock { _ in try spawn(executable, arguments) }
        handle.attach(child)

        // Both pipes are drained together, so a child filling one never blocks on it.
        var outData = Data()
        var errData = Data()
        var fds = [pollfd(fd: out, events: Int16(POLLIN), revents: 0), pollfd(fd: err, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                break
            }
            for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
                let count = read(fds[index].fd, &buffer, buffer.count)
                if count > 0 {
                    if index == 0 {
                        outData.append(contentsOf: buffer[0..<count])
                        onStdout(String(decoding: buffer[0..<count], as: UTF8.self))
                    } else {
                        errData.append(contentsOf: buffer[0..<count])
                    }
                } else if count == 0 || errno != EINTR {
                    close(fds[index].fd)
                    fds[index].fd = -1
                }
            }
        }
        // A failed poll leaves pipes open: closed here, whatever ended the loop.
        for pipe in fds where pipe.fd >= 0 { close(pipe.fd) }
        // Wait for the child's end without reaping it, forget its pid, then reap: until it
        // is reaped the pid cannot be recycled, so terminate() never signals a stranger.
        var info = siginfo_t()
        while waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        handle.detach()
        var waitStatus: Int32 = 0
        while waitpid(child, &waitStatus, 0) < 0 && errno == EINTR {}
        // A child killed by a signal reports 128 + the signal, as a shell would.
        let exited = waitStatus & 0x7f == 0
        return Output(
            status: exited ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f), stdout: outData,
            stderr: String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
