internal import CLibvirt
import Foundation

/// The one funnel into C. Every libvirt call goes through here so that, on failure, libvirt's
/// per-thread last error is copied in the same synchronous frame that made the call (there is no
/// suspension point in between), then reset, then thrown.
@inline(__always)
func call<T>(_ function: String, _ body: () -> T?) throws(LibvirtError) -> T {
    Runtime.ensureInitialized()
    if let value = body() { return value }
    throw LibvirtError.takeLast(function: function)
}

/// Same funnel for libvirt's int-returning functions: -1 means failure.
@inline(__always)
@discardableResult
func call(_ function: String, _ body: () -> Int32) throws(LibvirtError) -> Int32 {
    Runtime.ensureInitialized()
    let result = body()
    if result >= 0 { return result }
    throw LibvirtError.takeLast(function: function)
}

extension LibvirtError {
    /// Copies and resets libvirt's last error on this thread.
    static func takeLast(function: String) -> LibvirtError {
        guard let last = virGetLastError() else {
            return LibvirtError(code: .internalError, message: "\(function) failed without an error", function: function)
        }
        let error = LibvirtError(
            code: Code(rawValue: last.pointee.code),
            domain: last.pointee.domain,
            message: last.pointee.message.map { String(cString: $0) } ?? "unknown libvirt error",
            function: function,
            systemErrno: last.pointee.code == VIR_ERR_SYSTEM_ERROR.rawValue ? last.pointee.int1 : 0
        )
        virResetLastError()
        return error
    }
}

/// Takes ownership of a string libvirt allocated for the caller and frees it.
func takeString(_ pointer: UnsafeMutablePointer<CChar>) -> String {
    defer { free(pointer) }
    return String(cString: pointer)
}
