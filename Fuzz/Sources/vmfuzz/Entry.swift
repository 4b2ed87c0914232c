import Foundation

/// The check VMFUZZ_TARGET names (destination, xml or name), looked up once.
private let check: @Sendable (String) -> [String] = {
    let name = ProcessInfo.processInfo.environment["VMFUZZ_TARGET"] ?? "destination"
    guard let check = FuzzHarness.targets[name] else {
        fatalError("VMFUZZ_TARGET=\(name): no such fuzz target (\(FuzzHarness.targets.keys.sorted()))")
    }
    return check
}()

/// libFuzzer's entry point: the input as UTF-8 (invalid bytes replaced, as a String read from
/// a file would be); a broken property is a crash, which libFuzzer saves as a reproducer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let broken = check(text)
    if !broken.isEmpty {
        FileHandle.standardError.write(Data("vmfuzz: \(text.debugDescription): \(broken)\n".utf8))
        abort()
    }
    return 0
}
