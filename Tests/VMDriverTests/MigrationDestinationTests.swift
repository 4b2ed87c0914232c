import Testing

@testable import VMDriver

@Suite("Migration destinations")
struct MigrationDestinationTests {
    @Test(arguments: [
        ("hostb", MigrationDestination.Kind.dnsName, "hostb", nil as Int?),
        ("kvm2.example.org:16509", .dnsName, "kvm2.example.org", 16509),
        ("10.77.0.2", .ipv4, "10.77.0.2", nil),
        ("10.77.0.2:16514", .ipv4, "10.77.0.2", 16514),
        ("fd00::2", .ipv6, "fd00::2", nil),
        ("[fd00::2]:16509", .ipv6, "fd00::2", 16509),
        ("qemu+tls://10.77.0.2/system", .libvirtURI, "10.77.0.2", nil),
        ("qemu+tcp://[fd00::2]:16509/system", .libvirtURI, "fd00::2", 16509),
    ])
    func acceptedFormats(text: String, kind: MigrationDestination.Kind, host: String, port: Int?) throws {
        let destination = try MigrationDestination(parsing: text)
        #expect(destination.kind == kind)
        #expect(destination.host == host)
        #expect(destination.port == port)
    }

    @Test(arguments: [
        "", "host name", "300.1.2.3", "10.77.0", "hostb:0", "hostb:70000", "hostb:port", "-bad-.example", "[fd00::2",
        "[nothex]:1", "http://hostb/", "qemu+tcp://hostb/other", "qemu:///system", "host_b", "hôte", "a..b", "1.2.3.4.5",
    ])
    func everythingElseIsCode4NamingTheFormats(text: String) {
        let error = #expect(throws: VMDriverError.self) { try MigrationDestination(parsing: text) }
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("libvirt URI") == true)
    }

    @Test func ipv6IsBracketedInURIs() throws {
        #expect(try MigrationDestination(parsing: "fd00::2").hostForURI == "[fd00::2]")
        #expect(try MigrationDestination(parsing: "10.0.0.1").hostForURI == "10.0.0.1")
    }
}
