import Foundation
import Testing

@testable import VMDriver

/// The TLS part of `migrate --check`, against a real TLS server: GnuTLS's gnutls-serv on
/// loopback with certificates certtool makes for each test (a CA, a server certificate, client
/// certificates current and expired).
@Suite(
    "TLS forecast against a real TLS server", .serialized,
    .enabled(if: Subprocess.which("gnutls-serv") != nil, "needs gnutls-bin (scripts/setup-host.sh installs it)"))
struct TLSProbeTests {
    /// A CA, a server certificate and a client's pkipath folder, in a temporary folder.
    final class PKIFolder {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vmdriver-tls-\(UUID().uuidString)")
        var client: String { folder.appendingPathComponent("client").path }

        init(serverNames: [String], clientExpired: Bool = false) throws {
            try FileManager.default.createDirectory(atPath: client, withIntermediateDirectories: true)
            try key("ca.key")
            try certificate(
                "ca.pem", key: "ca.key", template: "cn = Test CA\nca\ncert_signing_key\nexpiration_days = 30\n", ca: false)
            try key("server.key")
            let names = serverNames.map { $0.first!.isNumber ? "ip_address = \($0)" : "dns_name = \($0)" }.joined(separator: "\n")
            try certificate(
                "server.pem", key: "server.key",
                template: "cn = \(serverNames.first ?? "server")\n\(names)\ntls_www_server\nsigning_key\nexpiration_days = 30\n")
            try key("client/clientkey.pem")
            try certificate(
                "client/clientcert.pem", key: "client/clientkey.pem",
                template: "cn = client\ntls_www_client\nsigning_key\n"
                    + (clientExpired
                        ? "activation_date = \"2019-01-01 00:00:00\"\nexpiration_date = \"2020-01-01 00:00:00\"\n"
                        : "expiration_days = 30\n"))
            try FileManager.default.copyItem(atPath: path("ca.pem"), toPath: path("client/cacert.pem"))
        }

        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

        private func key(_ name: String) throws {
            try run("certtool", ["--generate-privkey", "--key-type", "ecdsa", "--outfile", path(name)])
        }

        private func certificate(_ name: String, key: String, template: String, ca: Bool = true) throws {
            let file = path("\(name).tmpl")
            try template.write(toFile: file, atomically: true, encoding: .utf8)
            let signer = ca ? ["--load-ca-certificate", path("ca.pem"), "--load-ca-privkey", path("ca.key")] : []
            try run(
                "certtool",
                [
                    ca ? "--generate-certificate" : "--generate-self-signed", "--load-privkey", path(key), "--template", file,
                    "--outfile", path(name),
                ] + signer)
        }

        func remove() { try? FileManager.default.removeItem(at: folder) }
    }

    /// gnutls-serv presenting the folder's server certificate on a loopback port.
    final class Server {
        let process = Process()
        let port = Int.random(in: 20_000...40_000)

        init(_ pki: PKIFolder) throws {
            process.executableURL = URL(fileURLWithPath: Subprocess.which("gnutls-serv")!)
            process.arguments = [
                "--x509cafile", pki.path("ca.pem"), "--x509certfile", pki.path("server.pem"), "--x509keyfile",
                pki.path("server.key"), "--port", String(port), "--echo",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        /// Waits until it accepts connections.
        func ready() async -> Bool {
            await waitFor(10) {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                    }
                }
            }
        }

        func stop() {
            // gnutls-serv outlives SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @Test func aCertificateThatNamesTheAddressDialledIsTrusted() async throws {
        let pki = try PKIFolder(serverNames: ["127.0.0.1"])
        defer { pki.remove() }
        let server = try Server(pki)
        defer { server.stop() }
        try #require(await server.ready())
        let tls = TLSProbe.check(
            destination: try MigrationDestination(parsing: "127.0.0.1:\(server.port)"), pki: PKI(path: pki.client))
        #expect(tls.files.map(\.path) == ["cacert.pem", "clientcert.pem", "clientkey.pem"].map { "\(pki.client)/\($0)" })
        #expect(tls.files.allSatisfy { $0.problem == nil }, "\(tls.files)")
        // About 30 days from now, as made.
        let days = try #require(tls.files[1].expires).timeIntervalSinceNow / 86_400
        #expect(days > 29 && days <= 30.01, "\(days)")
        #expect(tls.trusted == true && tls.namesAddress == true, "\(tls.status)")
        #expect(tls.serverSubject?.contains("CN=127.0.0.1") == true, "\(tls.serverSubject ?? "nil")")
        #expect(TLSProbe.problems(tls, security: .normal).isEmpty)
    }

    @Test func aCertificateForAnotherNameIsCode6NamingIt() async throws {
        let pki = try PKIFolder(serverNames: ["hostb.example.test"])
        defer { pki.remove() }
        let server = try Server(pki)
        defer { server.stop() }
        try #require(await server.ready())
        let tls = TLSProbe.check(
            destination: try MigrationDestination(parsing: "127.0.0.1:\(server.port)"), pki: PKI(path: pki.client))
        #expect(tls.namesAddress == false, "\(tls.status)")
        let problems = TLSProbe.problems(tls, security: .normal)
        #expect(problems.map(\.code) == [.incompatibleParameters])
        #expect(problems.first?.message.contains("CN=hostb.example.test") == true, "\(problems)")
        #expect(problems.first?.message.contains("127.0.0.1:\(server.port)") == true, "\(problems)")
    }

    @Test func anExpiredClientCertificateIsCode1AndTheServerIsNotAsked() throws {
        let pki = try PKIFolder(serverNames: ["127.0.0.1"], clientExpired: true)
        defer { pki.remove() }
        let tls = TLSProbe.check(destination: try MigrationDestination(parsing: "127.0.0.1:1"), pki: PKI(path: pki.client))
        #expect(tls.files[1].problem == "expired on 2020-01-01", "\(tls.files)")
        #expect(tls.trusted == nil)
        let problems = TLSProbe.problems(tls, security: .high)
        #expect(problems.map(\.code) == [.notSupported])
        #expect(problems.first?.message.contains("\(pki.client)/clientcert.pem") == true)
        // A missing file is named too.
        try FileManager.default.removeItem(atPath: "\(pki.client)/clientkey.pem")
        let missing = TLSProbe.check(destination: try MigrationDestination(parsing: "127.0.0.1:1"), pki: PKI(path: pki.client))
        #expect(missing.files[2].problem == "missing")
    }
}

private func waitFor(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return false
}

@discardableResult
private func run(_ tool: String, _ arguments: [String]) throws -> String {
    let output = try Subprocess.run(Subprocess.which(tool) ?? tool, arguments)
    guard output.status == 0 else {
        throw VMDriverError(.failed, "\(tool) \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)")
    }
    return String(decoding: output.stdout, as: UTF8.self)
}
