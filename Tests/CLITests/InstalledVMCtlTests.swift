import Foundation
import Testing
import VMDriverTestSupport

/// Where scripts/test.sh installed vmctl.
enum InstalledVMCtl {
    static let prefix = ProcessInfo.processInfo.environment["VMDRIVER_VMCTL_PREFIX"]
}

/// vmctl as `scripts/install-vmctl.sh` installs it (scripts/test.sh installs the build under
/// test into a prefix and names it): its manual page, its completions, its version.
@Suite(
    "vmctl installed with its manual page and completions",
    .enabled(if: InstalledVMCtl.prefix != nil, "scripts/test.sh installs vmctl and sets VMDRIVER_VMCTL_PREFIX"))
struct InstalledVMCtlTests {
    /// What a user reaches for first; every one must be in the manual and be completed.
    static let subcommands = [
        "open", "list", "start", "shutdown", "destroy", "suspend", "save", "resume", "caps", "clone", "clones", "promote",
        "convert", "delete", "snapshot", "migrate", "evacuate", "jobs", "abort",
    ]

    var prefix: String { InstalledVMCtl.prefix ?? "" }

    /// Runs bash's completion for `line` (the words typed so far, the last one being completed)
    /// with the installed script, as bash-completion would; returns the candidates.
    func complete(_ words: [String]) throws -> [String] {
        let script = "\(prefix)/share/bash-completion/completions/vmctl"
        // The words travel as arguments, never inside the script text.
        let program = """
            source "$1"; shift
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            _vmctl vmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        return try run("bash", ["-c", program, "bash", script] + words).split(separator: "\n").map(String.init)
    }

    @Test func theManualPageRendersWithEverySubcommand() throws {
        let page = "\(prefix)/share/man/man1/vmctl.1"
        let text = try run("man", ["-P", "cat", "-l", page])
        #expect(text.contains("vmctl"))
        for name in Self.subcommands {
            #expect(text.contains(name), "the manual has no '\(name)'")
        }
        #expect(text.contains("--bandwidth"), "migrate's options are in it")
        // groff's own warnings, all of them (-ww): none.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["groff", "-man", "-Tutf8", "-ww", "-z", page]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let warnings = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && warnings.isEmpty, "\(warnings)")
    }

    @Test func bashCompletesSubcommandsAndOptions() throws {
        #expect(try complete(["vmctl", "con"]) == ["convert"])
        #expect(try complete(["vmctl", "mig"]) == ["migrate"])
        #expect(try complete(["vmctl", "migrate", "--ty"]) == ["--type"])
        #expect(try complete(["vmctl", "snapshot", "re"]) == ["revert"])
        let all = try complete(["vmctl", ""])
        #expect(Set(Self.subcommands).isSubset(of: Set(all)), "\(all)")
    }

    @Test func zshAndFishScriptsParse() throws {
        try run("zsh", ["-n", "\(prefix)/share/zsh/site-functions/_vmctl"])
        try run("fish", ["--no-execute", "\(prefix)/share/fish/vendor_completions.d/vmctl.fish"])
        let fish = try String(contentsOfFile: "\(prefix)/share/fish/vendor_completions.d/vmctl.fish", encoding: .utf8)
        #expect(fish.contains("convert") && fish.contains("migrate"))
    }

    /// `vmctl --version` is the version the C library installs with (one source).
    @Test func versionIsVMDriversVersion() throws {
        let source = try String(
            contentsOf: packageRoot.appendingPathComponent("Sources/VMDriver/Version.swift"), encoding: .utf8)
        let version = try #require(source.firstMatch(of: /current = "([0-9.]+)"/)?.1)
        #expect(try run("\(prefix)/bin/vmctl", ["--version"]).trimmingCharacters(in: .whitespacesAndNewlines) == String(version))
    }
}
