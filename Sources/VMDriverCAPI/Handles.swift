import Foundation
import Synchronization
import VMDriver

/// An object a C handle stands for.
protocol HandleObject: AnyObject, Sendable {}

/// The C API's handles: small integers (VIX's `VixHandle`, Parallels' `PRL_HANDLE`, CIM's
/// `CIM_Handle`) naming reference-counted objects. One table for all three APIs; safe to call
/// from any thread.
final class Handles: Sendable {
    static let shared = Handles()

    private struct Entry {
        var object: any HandleObject
        var references: Int
    }
    private struct State {
        var next: Int32 = 1
        var entries: [Int32: Entry] = [:]
    }
    private let state = Mutex(State())

    /// Adds an object and returns its new handle (one reference, the caller's).
    func add(_ object: any HandleObject) -> Int32 {
        state.withLock { state in
            // Skip 0 (every API's invalid handle) and handles still in use after a wrap.
            repeat {
                state.next = state.next == Int32.max ? 1 : state.next + 1
            } while state.entries[state.next] != nil
            state.entries[state.next] = Entry(object: object, references: 1)
            return state.next
        }
    }

    /// The object a handle names, if it is one of type `T`.
    func get<T: HandleObject>(_ handle: Int32, as type: T.Type = T.self) -> T? {
        state.withLock { $0.entries[handle]?.object as? T }
    }

    func retain(_ handle: Int32) {
        state.withLock { state in state.entries[handle]?.references += 1 }
    }

    /// Drops a reference; the object goes with the last one. Returns whether the handle existed.
    @discardableResult
    func release(_ handle: Int32) -> Bool {
        let dropped: (any HandleObject)? = state.withLock { state in
            guard var entry = state.entries[handle] else { return nil }
            entry.references -= 1
            if entry.references > 0 {
                state.entries[handle] = entry
                return nil
            }
            state.entries[handle] = nil
            return entry.object
        }
        // Released outside the lock: an object's deinit may call back in.
        _ = dropped
        return true
    }
}

/// A connected host (VIX host, Parallels server, CIM migration service).
final class HostObject: HandleObject {
    let host: VMDriver.Host
    /// VIX's service provider as given (recorded, reported back as VIX_PROPERTY_HOST_HOSTTYPE).
    let provider: Int32
    init(host: VMDriver.Host, provider: Int32) {
        self.host = host
        self.provider = provider
    }
}

/// A VM handle.
final class VMObject: HandleObject {
    let vm: VirtualMachine
    init(vm: VirtualMachine) { self.vm = vm }
}

/// A snapshot of a VM.
final class SnapshotObject: HandleObject {
    let vm: VirtualMachine
    let snapshot: SnapshotInfo
    init(vm: VirtualMachine, snapshot: SnapshotInfo) {
        self.vm = vm
        self.snapshot = snapshot
    }
}

/// A C string the caller frees with `free` (Vix_FreeBuffer, CIM's documented `free()`).
func mallocString(_ text: String) -> UnsafeMutablePointer<CChar>? { strdup(text) }

/// A C string argument as Swift text: nil for NULL.
func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
