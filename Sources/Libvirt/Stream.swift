internal import CLibvirt
import Foundation

/// A libvirt data stream (blocking), for volume downloads and uploads through the daemon, which
/// work the same on local and remote hosts. Not thread-safe for concurrent use: one owner reads
/// or writes it. `deinit` frees the reference; a stream not finished is aborted first.
public final class Stream: @unchecked Sendable {
    let pointer: virStreamPtr
    public let connection: Connection
    private var open = true

    /// What a sparse-aware read returned.
    public enum Chunk: Sendable, Equatable {
        /// Bytes of data (the count read into the buffer).
        case data(Int)
        /// A hole of this many bytes (reads as zeros).
        case hole(Int64)
        /// End of the stream.
        case end
    }

    /// A new blocking stream. Calls `virStreamNew`.
    public init(connection: Connection) throws(LibvirtError) {
        self.connection = connection
        pointer = try call("virStreamNew") { virStreamNew(connection.pointer, 0) }
    }

    deinit {
        if open { virStreamAbort(pointer) }
        virStreamFree(pointer)
    }

    /// Reads the next chunk into `buffer`; with a sparse stream, stops at holes and reports
    /// them. Calls `virStreamRecvFlags` and `virStreamRecvHole`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, sparse: Bool) throws(LibvirtError) -> Chunk {
        Runtime.ensureInitialized()
        let flags = sparse ? UInt32(VIR_STREAM_RECV_STOP_AT_HOLE.rawValue) : 0
        let count = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
            virStreamRecvFlags(pointer, $0, buffer.count, flags)
        }
        switch count {
        case 0: return .end
        case -3:
            var length: Int64 = 0
            try call("virStreamRecvHole") { virStreamRecvHole(pointer, &length, 0) }
            return .hole(length)
        case ..<0: throw LibvirtError.takeLast(function: "virStreamRecvFlags")
        default: return .data(Int(count))
        }
    }

    /// Writes all of `bytes`. Calls `virStreamSend`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(LibvirtError) {
        var offset = 0
        while offset < bytes.count {
            let sent = try call("virStreamSend") {
                virStreamSend(
                    pointer, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), bytes.count - offset)
            }
            offset += Int(sent)
        }
    }

    /// Writes a hole of `length` bytes to a sparse stream. Calls `virStreamSendHole`.
    public func writeHole(_ length: Int64) throws(LibvirtError) {
        try call("virStreamSendHole") { virStreamSendHole(pointer, length, 0) }
    }

    /// Ends the transfer, reporting any error the other side saw. Calls `virStreamFinish`.
    public func finish() throws(LibvirtError) {
        open = false
        try call("virStreamFinish") { virStreamFinish(pointer) }
    }

    /// Abandons the transfer. Calls `virStreamAbort`.
    public func abort() {
        guard open else { return }
        open = false
        virStreamAbort(pointer)
    }
}
