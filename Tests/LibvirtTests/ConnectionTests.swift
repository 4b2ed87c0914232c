import Foundation
import Testing

@testable import Libvirt

/// The Libvirt layer against libvirt's own in-process test driver: no daemon, real libvirt code.
@Suite("Libvirt on test:///default", .serialized)
struct ConnectionTests {
    let connection: Connection

    init() throws {
        connection = try Connection(uri: "test:///default")
    }

    @Test func reportsDriverAndVersions() throws {
        #expect(try connection.hypervisorType() == "TEST")
        #expect(try connection.libraryVersion() >= Version(major: 1, minor: 0, release: 0))
        #expect(try connection.capabilitiesXML().contains("<capabilities>"))
        #expect(connection.isAlive())
    }

    @Test func findsTheTestDomainByNameAndUUID() throws {
        let domain = try connection.lookupDomain(name: "test")
        #expect(try domain.name() == "test")
        let uuid = try domain.uuid()
        #expect(try connection.lookupDomain(uuid: uuid).name() == "test")
        #expect(try domain.xmlDescription().contains(uuid.uuidString.lowercased()))
        #expect(try domain.state().state == .running)
        let info = try domain.info()
        #expect(info.vcpus == 2)
        #expect(info.maxMemoryKiB == 8_388_608)
    }

    @Test func aMissingDomainThrowsLibvirtsErrorWithItsSwiftName() throws {
        let error = #expect(throws: LibvirtError.self) {
            try connection.lookupDomain(name: "vmdriver-no-such-domain")
        }
        #expect(error?.code == .noDomain)
        #expect(error?.function == "virDomainLookupByName")
        #expect(error?.message.isEmpty == false)
        // The funnel reset libvirt's per-thread error: the next good call is not tainted.
        #expect(try connection.lookupDomain(name: "test").name() == "test")
    }

    @Test func aSystemErrorCarriesTheErrnoLibvirtReported() throws {
        let name = "libvirt-tests-\(UUID().uuidString.prefix(8))"
        let domain = try connection.defineDomain(xml: Self.xml(name: name))
        defer {
            try? domain.destroy()
            try? domain.undefine()
        }
        try domain.start()
        // The test driver opens the file itself and reports the failed open(2) with its errno.
        let error = #expect(throws: LibvirtError.self) { try domain.save(to: "/vmdriver-no-such-folder/\(name).save") }
        #expect(error?.code == .systemError)
        #expect(error?.systemErrno == ENOENT)
        #expect(error?.isBusy == false)
        #expect(try domain.state().state == .running)
        // Errors that are not system errors carry no errno.
        let missing = #expect(throws: LibvirtError.self) { try connection.lookupDomain(name: "vmdriver-no-such-domain") }
        #expect(missing?.systemErrno == 0)
    }

    @Test func malformedXMLIsRejectedAndDefinesNothing() throws {
        let before = try connection.listAllDomains().count
        let error = #expect(throws: LibvirtError.self) {
            try connection.defineDomain(xml: "<domain type='test'><name>broken</name")
        }
        #expect(error?.code == .xmlError || error?.code == .xmlDetail)
        #expect(try connection.listAllDomains().count == before)
    }

    @Test func defineStartSuspendResumeDestroyUndefine() throws {
        let name = "libvirt-tests-\(UUID().uuidString.prefix(8))"
        let domain = try connection.defineDomain(xml: Self.xml(name: name))
        defer {
            try? domain.destroy()
            try? domain.undefine()
        }
        #expect(try domain.isPersistent())
        #expect(try domain.state().state == .shutoff)
        #expect(try connection.listAllDomains([.inactive]).contains { try $0.name() == name })
        try domain.start()
        #expect(try domain.state().state == .running)
        #expect(try connection.listAllDomains([.active]).contains { try $0.name() == name })
        try domain.suspend()
        #expect(try domain.state().state == .paused)
        try domain.resume()
        #expect(try domain.state().state == .running)
        #expect(throws: LibvirtError.self) { try domain.start() }
        try domain.destroy()
        #expect(try domain.state().state == .shutoff)
        try domain.undefine()
        #expect(throws: LibvirtError.self) { try connection.lookupDomain(name: name) }
    }

    @Test func lifecycleEventsArriveOnTheEventLoopThread() async throws {
        let name = "libvirt-events-\(UUID().uuidString.prefix(8))"
        let domain = try connection.defineDomain(xml: Self.xml(name: name))
        defer {
            try? domain.destroy()
            try? domain.undefine()
        }
        let (events, continuation) = AsyncStream.makeStream(of: LifecycleEvent.self)
        let registration = try connection.onLifecycleEvent(of: domain) { continuation.yield($0) }
        defer { registration.cancel() }
        try domain.start()
        try domain.destroy()
        var kinds: [LifecycleEvent.Kind] = []
        for await event in events {
            #expect(event.domainName == name)
            kinds.append(event.kind)
            if event.kind == .stopped { break }
        }
        #expect(kinds == [.started, .stopped])
    }

    @Test func versionsDecodeLibvirtsEncoding() {
        #expect(Version(encoded: 9_000_000) == Version(major: 9, minor: 0, release: 0))
        #expect(Version(encoded: 7_002_005).description == "7.2.5")
        #expect(Version(major: 7, minor: 2, release: 0) < Version(major: 7, minor: 10, release: 0))
    }

    static func xml(name: String) -> String {
        """
        <domain type='test'>
          <name>\(name)</name>
          <memory unit='MiB'>64</memory>
          <vcpu>1</vcpu>
          <os><type>hvm</type></os>
        </domain>
        """
    }
}
