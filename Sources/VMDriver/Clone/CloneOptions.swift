import Foundation

/// What makes a clone a new machine inside (`VirtualMachine.clone(name:type:snapshot:destination:options:)`).
/// A clone is otherwise its source inside: the same hostname, machine-id and SSH host keys,
/// the commonest clone bug there is.
///
/// - A hostname, SSH keys, user-data or a network-config give the clone a NoCloud seed: an ISO
///   9660 image labelled `cidata` on a read-only CD-ROM, whose meta-data holds a new instance-id
///   (`iid-` and the clone's UUID) and the local-hostname, so cloud-init in the guest takes a new
///   identity on its first boot (as virt-install's `--cloud-init` does).
/// - `sysprep` resets machine-id, SSH host keys and hostname in the clone's disks before it is
///   registered, with virt-sysprep (libguestfs), for guests without cloud-init.
public struct CloneOptions: Sendable, Equatable {
    /// The clone's hostname (RFC 1123). Default, when a seed is made: the clone's name, if it is
    /// a valid hostname.
    public var hostname: String?
    /// SSH public keys, each one OpenSSH public key line (the contents of a `.pub` file): the
    /// seed's `public-keys`, which cloud-init puts in the default user's `authorized_keys`.
    public var sshKeys: [String]
    /// The seed's user-data, verbatim (`#cloud-config` …). Default: an empty `#cloud-config`.
    public var userData: String?
    /// The seed's network-config (cloud-init's network config version 1 or 2), verbatim.
    public var networkConfig: String?
    /// Reset machine-id, SSH host keys and hostname in the clone's disks with virt-sysprep.
    public var sysprep: Bool

    public init(
        hostname: String? = nil, sshKeys: [String] = [], userData: String? = nil, networkConfig: String? = nil,
        sysprep: Bool = false
    ) {
        self.hostname = hostname
        self.sshKeys = sshKeys
        self.userData = userData
        self.networkConfig = networkConfig
        self.sysprep = sysprep
    }

    /// Whether the clone gets a NoCloud seed.
    public var makesSeed: Bool { hostname != nil || !sshKeys.isEmpty || userData != nil || networkConfig != nil }

    /// Checks every field (code 4 naming it) and returns the hostname the clone takes.
    func validated(cloneName: String) throws(VMDriverError) -> String? {
        if let hostname, let problem = Self.hostnameProblem(hostname) {
            throw VMDriverError(.invalidParameter, "hostname \(hostname.debugDescription) \(problem)")
        }
        for (index, key) in sshKeys.enumerated() {
            if let problem = Self.publicKeyProblem(key) {
                // The key itself is never repeated: it may be a private one given by mistake.
                throw VMDriverError(.invalidParameter, "SSH key \(index + 1) \(problem)")
            }
        }
        if let userData, let problem = Self.userDataProblem(userData) {
            throw VMDriverError(.invalidParameter, "the user-data \(problem)")
        }
        if let networkConfig, !networkConfig.contains("version") {
            throw VMDriverError(
                .invalidParameter,
                "the network-config has no 'version' key: cloud-init reads network config version 1 or 2 only")
        }
        guard makesSeed else { return nil }
        if let hostname { return hostname.lowercased() }
        guard Self.hostnameProblem(cloneName) == nil else {
            throw VMDriverError(
                .invalidParameter,
                "the clone's name \(cloneName.debugDescription) is not a valid hostname, which its seed would give it: pass a hostname"
            )
        }
        return cloneName.lowercased()
    }

    /// Why `name` is not a hostname (RFC 1123: dot-separated labels of letters, digits and
    /// inner hyphens, each 1 to 63 bytes, 253 in all), or nil.
    static func hostnameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > 253 { return "is longer than 253 bytes" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if label.isEmpty { return "has an empty label" }
            if label.utf8.count > 63 { return "has a label longer than 63 bytes" }
            if !label.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-") }) {
                return "may hold only letters, digits, hyphens and dots"
            }
            if label.hasPrefix("-") || label.hasSuffix("-") { return "has a label that starts or ends with a hyphen" }
        }
        return nil
    }

    /// OpenSSH public key types.
    static let keyTypes: Set<String> = [
        "ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// Why `key` is not one OpenSSH public key line, or nil (never the key itself: it may be a
    /// private one given by mistake).
    public static func publicKeyProblem(_ key: String) -> String? {
        if key.contains("PRIVATE KEY") { return "is a private key: give its .pub file" }
        let lines = key.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        guard lines.count == 1, let line = lines.first else {
            return lines.isEmpty ? "is empty" : "holds \(lines.count) lines: give one public key per key"
        }
        let words = line.split(separator: " ")
        guard let index = words.firstIndex(where: { keyTypes.contains(String($0)) }), index + 1 < words.count,
            Data(base64Encoded: String(words[index + 1])) != nil
        else { return "is not an OpenSSH public key (a line like 'ssh-ed25519 AAAA… comment')" }
        return nil
    }

    /// Why cloud-init would not read `userData`, or nil: it acts on a `#cloud-config`
    /// document, a script, an include list, a boothook, a jinja template or a MIME multipart.
    static func userDataProblem(_ userData: String) -> String? {
        let starts = [
            "#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler", "## template: jinja", "Content-Type:",
        ]
        if userData.allSatisfy(\.isWhitespace) { return "is empty" }
        guard starts.contains(where: userData.hasPrefix) else {
            return "does not start with #cloud-config, #! or another header cloud-init knows: it would be ignored"
        }
        return nil
    }
}
