import Foundation
import Testing

@testable import VMDriver

@Suite("Clone definitions")
struct CloneDefinitionTests {
    static let source = """
        <domain type='kvm'>
          <name>web</name>
          <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
          <memory unit='KiB'>262144</memory>
          <os><type arch='x86_64'>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram></os>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='raw'/>
              <source file='/images/web.img'/>
              <backingStore/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='file' device='cdrom'>
              <source file='/iso/install.iso'/>
              <target dev='hdc' bus='ide'/>
              <readonly/>
            </disk>
            <interface type='network'><mac address='52:54:00:11:22:33'/><source network='default'/></interface>
            <serial type='file'><source path='/var/log/web-serial.log'/><log file='/var/log/web.log'/></serial>
            <console type='file'><source path='/var/log/web-serial.log'/><target type='serial'/></console>
          </devices>
        </domain>
        """

    @Test func theCloneGetsItsOwnIdentityAndFiles() throws {
        let definition = try CloneDefinition(sourceXML: Self.source)
        let lineage = CloneDefinition.Lineage(
            parentUUID: UUID(uuidString: "6695eb01-f6a4-8304-79aa-97f2502e193f")!, parentName: "web", type: "linked",
            snapshot: "s1", bases: ["/images/web.img"])
        let xml = definition.rewritten(
            name: "web-2", disks: ["vda": (path: "/clones/web-2-vda.qcow2", format: "qcow2")], logDirectory: "/clones",
            nvram: "/clones/web-2_VARS.fd", lineage: lineage)
        let parsed = try DomainXML(parsing: xml, origin: "the rewrite")
        #expect(parsed.name == "web-2")
        #expect(parsed.uuid == nil)
        #expect(parsed.interfaces.map(\.mac) == [nil])
        #expect(parsed.disks.map(\.path) == ["/clones/web-2-vda.qcow2", "/iso/install.iso"])
        #expect(parsed.disks.first?.format == "qcow2")
        #expect(!xml.contains("backingStore"))
        #expect(!xml.contains("/var/log/web"))
        #expect(xml.contains("/clones/web-2-serial0.log"))
        #expect(xml.contains("<nvram>/clones/web-2_VARS.fd</nvram>"))
        #expect(CloneDefinition.lineage(in: xml) == lineage)
        // A full clone of that clone carries no record of the first parent.
        let again = try CloneDefinition(sourceXML: xml).rewritten(
            name: "web-3", disks: [:], logDirectory: "/c", nvram: nil, lineage: nil)
        #expect(CloneDefinition.lineage(in: again) == nil)
    }

    /// The records of operations running on the source (its own, other clones being made) stay
    /// the source's; the clone gets the UUID its own record names.
    @Test func theCloneCarriesNoneOfTheSourcesOperationRecords() throws {
        let busy = Self.source.replacingOccurrences(
            of: "<devices>",
            with: """
                <metadata>
                  <vmdriver:operation xmlns:vmdriver="\(OperationRecord.namespace)" kind="migrate"/>
                  <vmdclone:operation xmlns:vmdclone="\(OperationRecords.clones.namespace(UUID()))" kind="clone"/>
                  <app:keep xmlns:app="https://example.invalid/app">yes</app:keep>
                </metadata>
                <devices>
                """)
        let uuid = UUID()
        let xml = try CloneDefinition(sourceXML: busy).rewritten(
            name: "web-2", uuid: uuid, disks: [:], logDirectory: "/c", nvram: nil, lineage: nil)
        #expect(!xml.contains("operation"), "\(xml)")
        #expect(xml.contains("https://example.invalid/app"), "other applications' metadata is kept")
        #expect(try DomainXML(parsing: xml, origin: "the rewrite").uuid == uuid)
    }

    /// The stamp in snapshot and file names: now, in UTC, yyyyMMdd-HHmmss.
    @Test func theStampIsNowInUTC() throws {
        let stamp = ClonePlan.stamp()
        #expect(stamp.wholeMatch(of: /[0-9]{8}-[0-9]{6}/) != nil, "\(stamp)")
        let reader = DateFormatter()
        reader.dateFormat = "yyyyMMdd-HHmmss"
        reader.timeZone = TimeZone(identifier: "UTC")
        let when = try #require(reader.date(from: stamp))
        #expect(abs(when.timeIntervalSinceNow) < 5, "\(stamp) is not now")
    }

    @Test func xmlSpecialCharactersInNamesAreEscaped() throws {
        let definition = try CloneDefinition(sourceXML: Self.source)
        let name = "a<b>&'\"</name><evil/>"
        let xml = definition.rewritten(name: name, disks: [:], logDirectory: "/d", nvram: nil, lineage: nil)
        let parsed = try DomainXML(parsing: xml, origin: "the rewrite")
        #expect(parsed.name == name)
        #expect(!xml.contains("<evil/>"))
    }

    @Test(arguments: [
        "", "a/b", "..", ".x", "-x", "tab\there", "line\nbreak", "nul\u{0}", " padded", String(repeating: "é", count: 101),
    ])
    func badNamesAreRefusedWithCode4(name: String) {
        let error = #expect(throws: VMDriverError.self) { try CloneDefinition.validate(name: name) }
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("cannot name a VM") == true)
    }

    @Test(arguments: ["web-2", "web_2.test", "ünïcode", "a<b&c"])
    func goodNamesPass(name: String) throws {
        try CloneDefinition.validate(name: name)
    }
}
