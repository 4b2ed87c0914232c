import Foundation
import Libvirt
import Testing

@testable import VMDriver

/// The storage seam a host gets, and this machine's side of it, on test:///default and
/// temporary folders.
@Suite("Host storage")
struct HostStorageTests {
    let folder: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-storage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    func mode(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    @Test func aHostWithoutAHostNameGetsThisMachinesFiles() async throws {
        let host = try await Host.connect("test:///default")
        defer { Task { try? await host.close() } }
        #expect(host.storage is LocalStorage)
    }

    @Test func localFilesAreMadeOwnerOnlyAndNeverOverwritten() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let host = try await Host.connect("test:///default")
        defer { Task { try? await host.close() } }
        let storage = host.storage
        let file = "\(folder)/clone.xml"
        var made: [String] = []
        try storage.write(Data("<domain/>".utf8), to: file) { made.append(file) }
        #expect(made == [file])
        #expect(FileManager.default.contents(atPath: file) == Data("<domain/>".utf8))
        #expect(try mode(file) == 0o600)
        #expect(storage.kind(of: file) == .other)
        // A second write to the same path is refused, and the first file stays as it was.
        #expect(throws: VMDriverError.self) { try storage.write(Data("other".utf8), to: file) { made.append(file) } }
        #expect(made == [file])
        #expect(FileManager.default.contents(atPath: file) == Data("<domain/>".utf8))

        let copy = DiskCopier.Plan(source: file, target: "\(folder)/copy.img", format: "raw", flatten: false, bytes: 9)
        try storage.copyImage(copy, handle: Subprocess.Handle(), created: {}) { _ in }
        #expect(FileManager.default.contents(atPath: copy.target) == Data("<domain/>".utf8))
        #expect(try mode(copy.target) == 0o600)

        try storage.delete(file)
        #expect(!storage.exists(file))
        #expect(storage.exists(copy.target))
    }

    @Test func localFoldersAreMadeOnceAndRemovedOnlyWhenEmpty() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let storage = LocalStorage(connection: try .init(uri: "test:///default"))
        let made = "\(folder)/a/b"
        #expect(storage.kind(of: made) == .missing)
        #expect(try storage.makeFolder(made))
        #expect(try !storage.makeFolder(made))
        #expect(storage.kind(of: made) == .directory)
        let inside = "\(made)/disk.img"
        #expect(FileManager.default.createFile(atPath: inside, contents: Data([1])))
        // Not a recursive removal: the file inside stays, and so does its folder.
        #expect(throws: VMDriverError.self) { try storage.delete(made) }
        #expect(storage.exists(inside))
        try storage.delete(inside)
        try storage.delete(made)
        #expect(storage.kind(of: made) == .missing)
    }

    @Test func aTLSClientCertificateIsLookedForInThePKIPath() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for name in ["cacert.pem", "clientcert.pem"] {
            #expect(FileManager.default.createFile(atPath: "\(folder)/\(name)", contents: Data("x".utf8)))
        }
        let missing = PKI(path: folder, environment: [:]).clientReady
        #expect(missing.status == .unavailable)
        #expect(missing.reason?.contains("\(folder)/clientkey.pem") == true, "\(missing.reason ?? "")")
        #expect(FileManager.default.createFile(atPath: "\(folder)/clientkey.pem", contents: Data("x".utf8)))
        #expect(PKI(path: folder, environment: [:]).clientReady.isAvailable)
        // VMDRIVER_PKIPATH when no path is given, as vmctl's --pkipath falls back to it.
        #expect(PKI(environment: ["VMDRIVER_PKIPATH": folder]).clientReady.isAvailable)
        #expect(PKI(path: "\(folder)/none", environment: ["VMDRIVER_PKIPATH": folder]).clientReady.status == .unavailable)
    }
}
