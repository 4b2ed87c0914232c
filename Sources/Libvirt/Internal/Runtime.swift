internal import CLibvirt
import Foundation

/// One-time libvirt set-up: a silent error handler (libvirt prints every error on stderr by
/// default; we report them as thrown errors instead) and the default event loop, which must be
/// registered before the first connection opens so that keepalive and domain events work.
enum Runtime {
    private static let initialized: Bool = {
        virInitialize()
        virSetErrorFunc(nil, { _, _ in })
        virEventRegisterDefaultImpl()
        EventLoopThread.start()
        return true
    }()

    @inline(__always)
    static func ensureInitialized() { _ = initialized }
}

/// libvirt's event loop runs on one dedicated thread for the life of the process: it services
/// keepalive messages and delivers domain events to registered callbacks.
enum EventLoopThread {
    static func start() {
        let thread = Thread {
            while true {
                if virEventRunDefaultImpl() < 0 {
                    virResetLastError()
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }
        thread.name = "libvirt-event-loop"
        thread.start()
    }
}
