internal import Crypto
import Foundation

/// A SHA-256 of an image file's bytes that does not depend on where the file has holes: the
/// bytes go in blocks of 64 KiB, a block of zeros (a hole or written zeros alike) as one marker
/// byte, any other block as another marker and its bytes, a last short block as a third marker,
/// its length and its bytes. Two files with the same bytes get the same digest however sparse
/// each copy is, and a run of holes costs a byte per block, not a hash of its zeros.
struct ContentDigest {
    static let blockSize = 64 << 10

    private var hash = SHA256()
    private let block = UnsafeMutableRawBufferPointer.allocate(byteCount: blockSize, alignment: 16)
    /// Bytes of the current block seen so far; whether all of them were zeros.
    private var filled = 0
    private var zerosOnly = true

    /// Frees the block buffer; call once, after `finish`.
    func deallocate() { block.deallocate() }

    /// Takes the next bytes.
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, Self.blockSize - filled)
            let piece = UnsafeRawBufferPointer(rebasing: rest.prefix(n))
            if zerosOnly && !MigrationStorage.isZero(piece) {
                // The zeros before it in this block are bytes of the block now.
                if filled > 0 { block.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: filled) }
                zerosOnly = false
            }
            if !zerosOnly { block.baseAddress!.advanced(by: filled).copyMemory(from: piece.baseAddress!, byteCount: n) }
            filled += n
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(n))
            if filled == Self.blockSize { flush() }
        }
    }

    /// Takes `count` zeros (a hole).
    mutating func addZeros(_ count: Int) {
        var rest = count
        // The current block's tail, then whole blocks as markers, then the head of the next.
        if filled > 0 {
            let n = min(rest, Self.blockSize - filled)
            if !zerosOnly { block.baseAddress!.advanced(by: filled).initializeMemory(as: UInt8.self, repeating: 0, count: n) }
            filled += n
            rest -= n
            if filled == Self.blockSize { flush() }
        }
        while rest >= Self.blockSize {
            hash.update(data: [0])
            rest -= Self.blockSize
        }
        filled += rest
    }

    /// The digest, as lowercase hex.
    mutating func finish() -> String {
        // The last block, even a short run of zeros, with its length: files of different
        // lengths differ.
        if filled > 0 {
            if zerosOnly { block.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: filled) }
            hash.update(data: [2])
            withUnsafeBytes(of: UInt64(filled).bigEndian) { hash.update(bufferPointer: $0) }
            hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: block.prefix(filled)))
        }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private mutating func flush() {
        if zerosOnly {
            hash.update(data: [0])
        } else {
            hash.update(data: [1])
            hash.update(bufferPointer: UnsafeRawBufferPointer(block))
        }
        (filled, zerosOnly) = (0, true)
    }
}

/// A reader that digests what is consumed from it (`ContentDigest`), as it is consumed: what a
/// copy reads once, digested on the way.
final class DigestingReader: ByteReader {
    private let reader: ByteReader
    private var digest = ContentDigest()
    private var current: BytePiece = .end

    init(_ reader: ByteReader) { self.reader = reader }

    deinit { digest.deallocate() }

    func peek() throws -> BytePiece {
        current = try reader.peek()
        return current
    }

    func consume(_ count: Int) {
        switch current {
        case .data(let bytes): digest.add(UnsafeRawBufferPointer(rebasing: bytes.prefix(count)))
        case .zeros: digest.addZeros(count)
        case .end: break
        }
        reader.consume(count)
    }

    /// The digest of everything consumed; call once, at the end.
    func finish() -> String { digest.finish() }
}
