import Foundation

extension MigrationForecast {
    /// The TLS side of a move with security normal or high, checked the way libvirt will meet
    /// it: the certificate files this machine's connection uses and when they expire, and the
    /// target's certificate as its libvirtd presents it to the address dialled, verified by
    /// GnuTLS (libvirt's TLS library): chain, dates, and whether it names that address, the
    /// commonest TLS failure.
    public struct TLS: Sendable, Codable, Equatable {
        public struct File: Sendable, Codable, Equatable {
            /// CA certificate, client certificate or client key.
            public var role: String
            public var path: String
            /// When a certificate stops being valid (nil for the key, or when it cannot be read).
            public var expires: Date?
            /// What is wrong with it: missing, unreadable, expired.
            public var problem: String?
        }

        public var files: [File]
        /// host:port, as dialled.
        public var dialled: String
        /// The target's certificate: its subject and end of validity.
        public var serverSubject: String?
        public var serverExpires: Date?
        /// Whether GnuTLS trusts the target's certificate for the address dialled (nil: it
        /// could not be asked).
        public var trusted: Bool?
        /// Whether the certificate names the address dialled (nil: cannot tell).
        public var namesAddress: Bool?
        /// GnuTLS's verdict, or why it could not be asked.
        public var status: String
    }
}

/// Runs the TLS checks with GnuTLS's own tools (gnutls-bin: certtool, gnutls-cli), spawned with
/// argument arrays. Never reads or prints a key's contents.
enum TLSProbe {
    static func check(destination: MigrationDestination, pki: PKI, now: Date = Date()) -> MigrationForecast.TLS {
        let port = destination.port ?? 16514
        var files: [MigrationForecast.TLS.File] = []
        for (role, path) in pki.clientFiles {
            var file = MigrationForecast.TLS.File(role: role, path: path)
            if !FileManager.default.fileExists(atPath: path) {
                file.problem = "missing"
            } else if !FileManager.default.isReadableFile(atPath: path) {
                file.problem = "not readable"
            } else if role != "client key" {
                file.expires = certificate(path)?.expires
                if file.expires == nil {
                    file.problem = "not a PEM certificate certtool can read"
                } else if let expires = file.expires, expires < now {
                    file.problem = "expired on \(Self.day(expires))"
                }
            }
            files.append(file)
        }
        var tls = MigrationForecast.TLS(files: files, dialled: "\(destination.hostForURI):\(port)", status: "")
        guard files.allSatisfy({ $0.problem == nil }) else {
            tls.status = "not asked: the client's files are not all usable"
            return tls
        }
        guard let cli = Subprocess.which("gnutls-cli") else {
            tls.status = "not asked: gnutls-cli is not installed (apt-get install gnutls-bin)"
            return tls
        }
        let arguments = [
            "10", cli, "--x509cafile", files[0].path, "--x509certfile", files[1].path, "--x509keyfile", files[2].path,
            "--port", String(port), destination.host,
        ]
        guard let timeout = Subprocess.which("timeout"), let output = try? Subprocess.run(timeout, arguments) else {
            tls.status = "not asked: gnutls-cli could not be run"
            return tls
        }
        let text = String(decoding: output.stdout, as: UTF8.self) + "\n" + output.stderr
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        // "- subject `CN=hostb,O=…', issuer `…', …, expires `2036-11-30 13:12:07 UTC', …" (the first is the server's).
        if let info = lines.first(where: { $0.hasPrefix("- subject `") }) {
            tls.serverSubject = quoted(after: "subject `", in: info)
            tls.serverExpires = quoted(after: "expires `", in: info).flatMap(Self.gnutlsDate)
        }
        let status = lines.first { $0.hasPrefix("- Status:") }.map {
            String($0.dropFirst("- Status:".count)).trimmingCharacters(in: .whitespaces)
        }
        if let status {
            tls.status = status
            tls.trusted = status.hasPrefix("The certificate is trusted")
            tls.namesAddress = status.contains("does not match the expected") ? false : tls.trusted == true ? true : nil
        } else {
            tls.status =
                "no TLS answer from \(tls.dialled): "
                + (lines.last { $0.contains("rror") || $0.hasPrefix("***") } ?? "gnutls-cli exited \(output.status)")
        }
        return tls
    }

    /// The problems a TLS forecast shows, with their codes.
    static func problems(_ tls: MigrationForecast.TLS, security: MigrationOptions.Security) -> [MigrationCheck.Problem] {
        var problems: [MigrationCheck.Problem] = []
        for file in tls.files {
            if let problem = file.problem {
                problems.append(
                    MigrationCheck.Problem(
                        code: .notSupported,
                        message: "security '\(security.rawValue)' needs the \(file.role) \(file.path): it is \(problem)"))
            }
        }
        if tls.namesAddress == false {
            problems.append(
                MigrationCheck.Problem(
                    code: .incompatibleParameters,
                    message: "the certificate of \(tls.dialled) (\(tls.serverSubject ?? "?")) does not name the address dialled: "
                        + "dial a name it carries, or give that host a certificate naming this address (GnuTLS: \(tls.status))"))
        } else if tls.trusted == false {
            problems.append(
                MigrationCheck.Problem(
                    code: .notSupported, message: "the certificate of \(tls.dialled) is not trusted: \(tls.status)"))
        }
        return problems
    }

    /// A certificate's end of validity, read by certtool.
    static func certificate(_ path: String) -> (expires: Date, subject: String?)? {
        guard let certtool = Subprocess.which("certtool"),
            let output = try? Subprocess.run(certtool, ["--certificate-info", "--infile", path]), output.status == 0
        else { return nil }
        let lines = String(decoding: output.stdout, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let notAfter = lines.first(where: { $0.hasPrefix("Not After:") }),
            let date = certtoolDate(String(notAfter.dropFirst("Not After:".count)).trimmingCharacters(in: .whitespaces))
        else { return nil }
        let subject = lines.first { $0.hasPrefix("Subject:") }.map {
            String($0.dropFirst("Subject:".count)).trimmingCharacters(in: .whitespaces)
        }
        return (date, subject)
    }

    private static func quoted(after marker: String, in line: String) -> String? {
        guard let start = line.range(of: marker) else { return nil }
        let rest = line[start.upperBound...]
        return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
    }

    /// certtool's "Fri Dec 03 13:19:00 UTC 2027".
    static let certtoolFormat = "EEE MMM dd HH:mm:ss 'UTC' yyyy"
    static func certtoolDate(_ text: String) -> Date? { formatter(certtoolFormat).date(from: text) }
    /// A date as certtool writes it.
    static func certtoolString(_ date: Date) -> String { formatter(certtoolFormat).string(from: date) }
    /// gnutls-cli's "2036-11-30 13:12:07 UTC".
    static func gnutlsDate(_ text: String) -> Date? { formatter("yyyy-MM-dd HH:mm:ss 'UTC'").date(from: text) }
    static func day(_ date: Date) -> String { formatter("yyyy-MM-dd").string(from: date) }

    /// A fixed-format formatter in UTC, whatever the locale.
    private static func formatter(_ format: String) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = format
        return formatter
    }
}
