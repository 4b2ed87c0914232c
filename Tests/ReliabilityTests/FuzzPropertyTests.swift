import Foundation
import Libvirt
import PropertyBased
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// Pieces that break parsers: XML specials, URI delimiters, path parts, white space, control
/// characters, NUL, line breaks, non-ASCII and noncharacters.
private let nasty: [String] =
    Array("aZ09-_.:/[]@?&=#%+;$()`'\"<>\\ \t\n\r\0é漢😀").map(String.init) + [
        "\u{2028}", "\u{FFFF}", "\u{202E}", "\u{7F}", "\r\n", "../", "&amp;", "]]>", "<!--", "qemu+tls://",
    ]

private func string(_ alphabet: [String], _ count: ClosedRange<Int>) -> Generator<String, AnySequence<[String?]>> {
    Gen<String?>.element(of: alphabet).map { $0! }.array(of: count).map { $0.joined() }.eraseToAnySequence()
}

private func pick<T: Sendable>(_ values: [T]) -> Generator<T, AnySequence<T?>> {
    Gen<T?>.element(of: values).map { $0! }.eraseToAnySequence()
}

@Suite("Fuzz: property-based over parsers, rewrites and flags")
struct FuzzPropertyTests {
    // MARK: The destination parser

    @Test func destinationsFromAnyCharacters() async {
        await propertyCheck(count: 2000, input: string(nasty, 0...40)) { text in
            let broken = FuzzHarness.destination(text)
            #expect(broken.isEmpty, "\(text.debugDescription): \(broken)")
        }
    }

    @Test func destinationsBuiltFromParts() async {
        let hosts = pick([
            "hostb", "10.77.0.2", "[fd00::2]", "fd00::2", "a-b.example.org", "256.1.1.1", "-bad", "x..y", "[::1", "é.org",
            "h&o<st", "", "host name", "1.2.3", "[fd00::2]:0", "::ffff:10.0.0.1",
        ])
        let ports = pick(["", ":16509", ":0", ":65536", ":-1", ":1x", "::", ":99999999999999999999"])
        let schemes = pick([
            "", "qemu://", "qemu+tcp://", "qemu+tls://", "qemu+ssh://user@", "qemu+ext://", "qemu+unix://", "xen://",
            "qemu+libssh2://", "QEMU+TLS://",
        ])
        let queries = pick([
            "", "?no_verify=1", "?pkipath=/x", "?command=/bin/touch", "?netcat=nc;id", "?keyfile=/k&no_verify=0", "?NETCAT=x",
        ])
        let paths = pick(["/system", "/session", "", "/", "/system/../x"])
        await propertyCheck(count: 1500, input: schemes, hosts, ports, paths, queries) { scheme, host, port, path, query in
            let text = scheme.isEmpty ? host + port : scheme + host + port + path + query
            let broken = FuzzHarness.destination(text)
            #expect(broken.isEmpty, "\(text.debugDescription): \(broken)")
        }
    }

    @Test func everyValidIPv4AndPortRoundTrips() async {
        await propertyCheck(count: 500, input: Gen<UInt8>.value(in: 0...255).array(of: 4), Gen<Int>.value(in: 1...65535)) {
            octets, port in
            let text = octets.map(String.init).joined(separator: ".") + ":\(port)"
            let parsed = try MigrationDestination(parsing: text)
            #expect(parsed.kind == .ipv4)
            #expect(parsed.port == port)
            #expect(parsed.description == text)
            #expect(FuzzHarness.destination(text).isEmpty)
        }
    }

    // MARK: Names and the XML rewrites

    @Test func namesAreRefusedOrSafeInXMLAndFiles() async {
        await propertyCheck(count: 1500, input: string(nasty, 0...24)) { name in
            let broken = FuzzHarness.name(name)
            #expect(broken.isEmpty, "\(name.debugDescription): \(broken)")
        }
    }

    @Test func domainXMLWithCharactersInsertedAnywhere() async {
        let sample = FuzzHarness.sampleDomain
        let insert = string(nasty + ["<", ">", "/", "=", "'", "\"", "&", ";", "!", "-", "[", "]"], 1...6)
        await propertyCheck(count: 600, input: Gen.int(in: 0...sample.count), insert) { offset, text in
            var xml = sample
            xml.insert(contentsOf: text, at: xml.index(xml.startIndex, offsetBy: offset))
            let broken = FuzzHarness.xml(xml)
            #expect(broken.isEmpty, "\(text.debugDescription) at \(offset): \(broken)")
        }
    }

    /// Exhaustive where random sampling is thin: each of these at every offset of the sample.
    @Test(arguments: ["😀", "&", "<", "'", "\"", "/", "\0", "é"])
    func domainXMLWithOneTokenAtEveryOffset(token: String) {
        let sample = FuzzHarness.sampleDomain
        for offset in 0...sample.count {
            var xml = sample
            xml.insert(contentsOf: token, at: xml.index(xml.startIndex, offsetBy: offset))
            let broken = FuzzHarness.xml(xml)
            #expect(broken.isEmpty, "\(token.debugDescription) at \(offset): \(broken)")
        }
    }

    @Test func domainXMLWithAnyValuesInNamesPathsAndAttributes() async {
        let values = string(nasty, 0...12).map { XMLTree.escape($0, quote: true) }
        await propertyCheck(count: 600, input: values, values, values) { name, path, attribute in
            let xml = FuzzHarness.sampleDomain
                .replacingOccurrences(of: "<name>web</name>", with: "<name>\(name)</name>")
                .replacingOccurrences(of: "/var/lib/libvirt/images/web-vda.qcow2", with: "/images/\(path)")
                .replacingOccurrences(of: "placement='static'", with: "placement='\(attribute)'")
            let broken = FuzzHarness.xml(xml)
            #expect(broken.isEmpty, "\(name) \(path) \(attribute): \(broken)")
        }
    }

    @Test func escapedTextReadsBackExactly() async throws {
        await propertyCheck(count: 1000, input: string(nasty, 0...30)) { text in
            // What XML can carry at all: no NUL or other C0 controls but tab and line ends, no noncharacters.
            let cleaned = String(
                String.UnicodeScalarView(
                    text.unicodeScalars.filter {
                        ($0.value >= 0x20 || "\t\n\r".unicodeScalars.contains($0)) && !$0.properties.isNoncharacterCodePoint
                    }))
            let element = XMLTree(name: "x")
            element.set("a", cleaned)
            let parsed = try XMLTree.parse(element.serialized())
            #expect(parsed.attributes["a"] == cleaned, "\(cleaned.debugDescription)")
        }
    }

    // MARK: Flag translation

    private static let disk = DiskLayout.Disk(target: "vda", path: "/images/a.qcow2", format: "qcow2", chain: [])

    @Test func migrationFlagsFollowTheOptions() async throws {
        let destination = try MigrationDestination(parsing: "10.77.0.2")
        let modes = pick([DiskMove.Mode.shared, .copy, .incremental]).array(of: 0...3)
        let flags = zip(Gen.bool, Gen.bool, Gen.bool, Gen.bool, Gen.bool, Gen.bool)
        await propertyCheck(
            count: 1500, input: Gen<MigrationOptions.MigrationType>.case, Gen<MigrationOptions.Security>.case,
            Gen<MigrationOptions.Policy>.case, modes, flags, Gen.int(in: -2...300)
        ) { type, security, policy, modes, switches, parallel in
            var options = MigrationOptions()
            options.type = type
            options.security = security
            options.policy = policy
            (options.keepSource, options.compress, options.autoConverge, options.postcopy) = (
                switches.0, switches.1, switches.2, switches.3
            )
            options.parallelConnections = parallel
            let tcg = switches.4
            let moves = modes.enumerated().map { index, mode in
                DiskMove(disk: Self.disk, mode: mode, targetPath: "/images/\(index).qcow2", capacity: 1 << 20)
            }
            let (flags, parameters) = MigrationPlan.translate(
                type: type, destination: destination, options: options, moves: moves, tcg: tcg, autoConverge: switches.5)
            #expect(flags.contains(.peerToPeer) && flags.contains(.persistDestination))
            // UNSAFE only where a disk stays on storage verified (or declared) shared.
            #expect(flags.contains(.unsafe) == modes.contains(.shared))
            // TLS for the data exactly when security is high, checked against the target's address.
            #expect(flags.contains(.tls) == (security == .high))
            #expect((parameters.tlsDestination != nil) == (security == .high))
            if security == .high { #expect(parameters.tlsDestination == destination.host) }
            #expect(flags.contains(.live) == (type == .hot))
            #expect(flags.contains(.offline) == (type == .cold))
            #expect(flags.contains(.undefineSource) == !options.keepSource)
            #expect(!(flags.contains(.nonSharedDisk) && flags.contains(.nonSharedIncremental)))
            let travelling = modes.contains { $0 != .shared }
            #expect((flags.contains(.nonSharedDisk) || flags.contains(.nonSharedIncremental)) == (type != .cold && travelling))
            // The policy never adds post-copy for a TCG guest.
            if tcg && !options.postcopy { #expect(!flags.contains(.postcopy)) }
            #expect(flags.contains(.parallel) == (parallel > 1))
            if let connections = parameters.parallelConnections { #expect(Int(connections) == parallel) }
            #expect(flags.contains(.compressed) == options.compress)
        }
    }

    @Test func contradictoryOptionsAreCode6AndBadValuesCode4() async throws {
        let uris = pick(["hostb", "qemu+tcp://hostb/system", "qemu+tls://hostb/system", "qemu+tls://hostb/system?no_verify=1"])
        let homes = pick([String?.none, "/srv/vms", "relative", "", "/a/../b", "/a\nb", "/"])
        await propertyCheck(
            count: 800, input: uris, Gen<MigrationOptions.Security>.case, Gen<MigrationOptions.Storage>.case, homes,
            Gen.int(in: -1...300)
        ) { uri, security, storage, home, parallel in
            var options = MigrationOptions()
            options.security = security
            options.storage = storage
            options.home = home
            options.parallelConnections = parallel
            let destination = try MigrationDestination(parsing: uri)
            let problems = MigrationPlan.validate(options: options, destination: destination)
            let codes = Set(problems.map(\.code))
            #expect(codes.isSubset(of: [.invalidParameter, .incompatibleParameters]))
            let plainURI = uri.hasPrefix("qemu+tcp")
            let noVerify = uri.contains("no_verify")
            #expect(
                codes.contains(.incompatibleParameters)
                    == ((plainURI && security != .low) || (noVerify && security == .high) || (home != nil && storage == .shared)))
            let badHome = home.map { MigrationPlan.badHome($0) != nil } ?? false
            #expect(codes.contains(.invalidParameter) == (badHome || !(1...255).contains(parallel)))
            if noVerify && security == .high {
                #expect(problems.contains { $0.message.contains("no_verify") })
            }
        }
    }

    // MARK: The committed corpus, replayed every run

    static let corpus = packageRoot.appendingPathComponent("Fuzz/corpus")

    @Test(arguments: ["destination", "xml", "name"])
    func committedCorpusReplays(target: String) throws {
        let folder = Self.corpus.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(files.count >= 5, "the corpus of \(target) is missing")
        let check = try #require(FuzzHarness.targets[target])
        for file in files {
            let data = try Data(contentsOf: folder.appendingPathComponent(file))
            let text = String(decoding: data, as: UTF8.self)
            let broken = check(text)
            #expect(broken.isEmpty, "\(target)/\(file): \(broken)")
        }
    }
}
