import Foundation
import Testing

@testable import VMDriver

@Suite("Clone identity options and the NoCloud seed")
struct CloneOptionsTests {
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJUxXphGRV2Xn/QbNcyBRK8k7iNzXyY7L4J+ztQozUo a \"quoted\" \\ comment"

    @Test(arguments: ["web-01", "a", "web.example.test", String(repeating: "a", count: 63), "A1"])
    func hostnamesRFC1123Allows(name: String) {
        #expect(CloneOptions.hostnameProblem(name) == nil)
    }

    @Test(arguments: [
        "", "web_01", "-web", "web-", "web..test", ".web", "wéb", "web 01", String(repeating: "a", count: 64),
        String(repeating: "abcdefgh.", count: 29),
    ])
    func hostnamesRFC1123Refuses(name: String) {
        #expect(CloneOptions.hostnameProblem(name) != nil)
    }

    @Test func publicKeysAreCheckedAndPrivateOnesNeverRepeated() throws {
        #expect(CloneOptions.publicKeyProblem(Self.key) == nil)
        #expect(CloneOptions.publicKeyProblem("ssh-rsa notbase64!!") != nil)
        #expect(CloneOptions.publicKeyProblem("\(Self.key)\n\(Self.key)")?.contains("2 lines") == true)
        let secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
        let options = CloneOptions(hostname: "web", sshKeys: [secret])
        let error = #expect(throws: VMDriverError.self) { try options.validated(cloneName: "c") }
        #expect(error?.code == .invalidParameter)
        #expect(error?.message.contains("private key") == true)
        #expect(error?.message.contains("b3BlbnNzaC1rZXktdjEAAAAA") == false)
    }

    @Test func theHostnameDefaultsToTheCloneNameOnlyWhenASeedIsMade() throws {
        #expect(try CloneOptions().validated(cloneName: "web_1") == nil)
        #expect(try CloneOptions(sshKeys: [Self.key]).validated(cloneName: "Web-1") == "web-1")
        #expect(throws: VMDriverError.self) { try CloneOptions(sshKeys: [Self.key]).validated(cloneName: "web_1") }
        #expect(try CloneOptions(hostname: "db").validated(cloneName: "web_1") == "db")
        #expect(throws: VMDriverError.self) { try CloneOptions(userData: "packages: [curl]\n").validated(cloneName: "c") }
        #expect(throws: VMDriverError.self) { try CloneOptions(networkConfig: "ethernets: {}\n").validated(cloneName: "c") }
    }

    @Test func metaDataReadsBackAsYAMLWouldReadIt() throws {
        let uuid = UUID()
        let seed = NoCloudSeed(cloneUUID: uuid, hostname: "web-01", options: CloneOptions(sshKeys: [Self.key]))
        let lines = seed.metaData.split(separator: "\n").map(String.init)
        #expect(lines[0] == "instance-id: iid-\(uuid.uuidString.lowercased())")
        #expect(lines[1] == "local-hostname: web-01")
        #expect(lines[2] == "public-keys:")
        // A JSON string is a YAML double-quoted scalar: it decodes back to the key, byte for byte.
        let quoted = try #require(lines[3].split(separator: "- ", maxSplits: 1).last)
        #expect(try JSONDecoder().decode(String.self, from: Data(quoted.utf8)) == Self.key)
        #expect(!quoted.contains("\\/"), "an escape YAML 1.1 does not know")
    }

    @Test(arguments: [
        ("<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>", "hdc", "ide"),
        ("<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>", "sda", "sata"),
        ("<os><type arch='aarch64' machine='virt'>hvm</type></os>", "sda", "scsi"),
    ])
    func theSeedGoesOnTheMachinesCDROMBus(os: String, dev: String, bus: String) throws {
        let xml = "<domain type='kvm'><name>web</name>\(os)<devices></devices></domain>"
        let unit = try NoCloudSeed.unit(in: xml)
        #expect(unit.dev == dev && unit.bus == bus)
    }

    @Test func aSourcesSeedIsReplacedNeverInherited() throws {
        let source = try CloneDefinition(sourceXML: CloneDefinitionTests.source)
        let first = NoCloudSeed(cloneUUID: UUID(), hostname: "one", options: CloneOptions(hostname: "one"))
        // hdc is the source's install ISO: the seed takes the next free IDE unit.
        let unit = try NoCloudSeed.unit(in: CloneDefinitionTests.source)
        #expect(unit.dev == "hdd")
        let seeded = source.rewritten(
            name: "one", disks: [:], logDirectory: "/clones", nvram: nil, lineage: nil,
            seed: ClonePlan.Seed(seed: first, path: "/clones/one-cidata.iso", unit: unit))
        let parsed = try DomainXML(parsing: seeded, origin: "clone")
        #expect(parsed.disks.filter { $0.device == "cdrom" }.map(\.path) == ["/iso/install.iso", "/clones/one-cidata.iso"])
        #expect(parsed.disks.last?.readOnly == true)
        #expect(NoCloudSeed.recorded(in: try XMLTree.parse(seeded))?.instanceID == first.instanceID)

        // Its clone, with no seed of its own, keeps the install ISO and not the seed.
        let plain = try CloneDefinition(sourceXML: seeded).rewritten(
            name: "two", disks: [:], logDirectory: "/clones", nvram: nil, lineage: nil)
        #expect(
            try DomainXML(parsing: plain, origin: "clone").disks.compactMap(\.path) == ["/images/web.img", "/iso/install.iso"])
        #expect(NoCloudSeed.recorded(in: try XMLTree.parse(plain)) == nil)
        // With a seed of its own, it gets that one in the freed unit.
        let second = NoCloudSeed(cloneUUID: UUID(), hostname: "two", options: CloneOptions(hostname: "two"))
        let reseeded = try CloneDefinition(sourceXML: seeded).rewritten(
            name: "two", disks: [:], logDirectory: "/clones", nvram: nil, lineage: nil,
            seed: ClonePlan.Seed(seed: second, path: "/clones/two-cidata.iso", unit: try NoCloudSeed.unit(in: seeded)))
        #expect(
            try DomainXML(parsing: reseeded, origin: "clone").disks.filter { $0.device == "cdrom" }.map(\.path) == [
                "/iso/install.iso", "/clones/two-cidata.iso",
            ])
        #expect(NoCloudSeed.recorded(in: try XMLTree.parse(reseeded))?.instanceID == second.instanceID)
    }

    @Test func theSeedImageIsAnISO9660VolumeLabelledCidata() throws {
        try #require(NoCloudSeed.builder() != nil, "genisoimage is installed by scripts/setup-host.sh")
        let seed = NoCloudSeed(
            cloneUUID: UUID(), hostname: "web-01",
            options: CloneOptions(userData: "#cloud-config\n", networkConfig: "version: 2\nethernets: {}\n"))
        let image = try seed.image(handle: Subprocess.Handle())
        // ISO 9660: the primary volume descriptor at sector 16, "CD001", the volume id at 40.
        #expect(image.count > 17 * 2048)
        let descriptor = image.subdata(in: 16 * 2048..<17 * 2048)
        #expect(descriptor[0] == 1)
        #expect(String(decoding: descriptor[1..<6], as: UTF8.self) == "CD001")
        #expect(String(decoding: descriptor[40..<72], as: UTF8.self).trimmingCharacters(in: .whitespaces) == "cidata")
        for name in ["meta-data", "user-data", "network-config"] {
            // Rock Ridge keeps the names as they are.
            #expect(image.range(of: Data(name.utf8)) != nil, "\(name) is not in the image")
        }
    }
}
