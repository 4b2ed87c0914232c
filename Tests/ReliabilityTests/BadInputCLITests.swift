import Foundation
import Testing
import VMDriverTestSupport

@Suite("Bad input: vmctl")
struct BadInputCLITests {
    static let huge = String(repeating: "x", count: 100_000)

    /// Command lines vmctl must refuse, the exit status each must give, and a word its message
    /// must hold (the thing it names).
    static let cases: [([String], Int32, String)] = [
        (["open", ""], 4, "no VM given"),
        (["open", "no-such-vm"], 4, "no-such-vm"),
        (["open", huge], 4, "no VM named"),
        (["open", "a\nb"], 4, "no VM named"),
        (["open", "漢字😀"], 4, "漢字😀"),
        (["open", "<a&b'\">"], 4, "<a&b'\">"),
        (["open", "../../etc/passwd"], 4, "../../etc/passwd"),
        (["open", "/dev/zero"], 4, "/dev/zero"),
        (["open", "/"], 4, "not a regular file"),
        (["open", "test", "--transient"], 6, "--transient"),
        (["clone", "test", "../evil"], 4, "cannot name a VM"),
        (["clone", "test", "a/b"], 4, "path separator"),
        (["clone", "test", ".hidden"], 4, "cannot name a VM"),
        (["clone", "test", "a\nb"], 4, "control character"),
        (["clone", "test", ""], 4, "empty"),
        (["clone", "test", huge], 4, "longer than 200 bytes"),
        (["clone", "test", "ok", "--dest", "relative/dir"], 4, "clone destination"),
        (["clone", "test", "ok", "--dest", "/tmp/x\ny"], 4, "clone destination"),
        (["clone", "test", "ok", "--linked", "--full"], 4, "linked"),
        (["snapshot", "create", "test", "../s"], 4, "cannot name a VM"),
        (["migrate", "test", ""], 4, "is not a migration destination"),
        (["migrate", "test", "a b"], 4, "is not a migration destination"),
        (["migrate", "test", huge], 4, "is not a migration destination"),
        (["migrate", "test", "host:99999"], 4, "port"),
        (["migrate", "test", "[fd00::2"], 4, "not closed"),
        (["migrate", "test", "qemu+ext://x/system?command=/usr/bin/touch"], 4, "transport"),
        (["migrate", "test", "qemu+ssh://x/system?netcat=nc;id"], 4, "run a program"),
        (["migrate", "test", "10.0.0.9", "--timeout", "1e300"], 4, "--timeout"),
        (["migrate", "test", "10.0.0.9", "--timeout", "inf"], 4, "--timeout"),
        (["migrate", "test", "10.0.0.9", "--timeout", "nan"], 4, "--timeout"),
        (["migrate", "test", "10.0.0.9", "--timeout", "-5"], 4, "--timeout"),
        (["migrate", "test", "10.0.0.9", "--parallel", "0"], 4, "parallel"),
        (["migrate", "test", "10.0.0.9", "--parallel", "99999999999"], 4, "parallel"),
        (["migrate", "test", "10.0.0.9", "--parallel", "99999999999999999999999"], 4, "parallel"),
        (["migrate", "test", "10.0.0.9", "--memory", "-1"], 4, "memory"),
        (["migrate", "test", "10.0.0.9", "--memory", "0"], 4, "MiB"),
        (["migrate", "test", "10.0.0.9", "--vcpus", "0"], 4, "vCPUs"),
        (["migrate", "test", "10.0.0.9", "--type", "lukewarm"], 4, "lukewarm"),
        (["migrate", "test", "10.0.0.9", "--security", "max"], 4, "max"),
        (["migrate", "test", "10.0.0.9", "--name", "../x"], 4, "cannot name a VM"),
        (["migrate", "test", "10.0.0.9", "--home", "relative"], 4, "home folder"),
        (["migrate", "test", "10.0.0.9", "--home", "/srv/../etc"], 4, "home folder"),
        (["migrate", "test", "10.0.0.9", "--home", "/srv/vms", "--storage", "shared"], 6, "--storage shared"),
        (["migrate", "test", "10.0.0.9", "--pkipath", "keys"], 4, "PKI path"),
        (["migrate", "test", "qemu+tcp://h/system", "--security", "high"], 6, "encrypted"),
        (["migrate", "test", "qemu+tls://h/system?no_verify=1", "--security", "high"], 6, "no_verify"),
        (["migrate", "test", "qemu+tls://h/system?no_verify=1", "--security", "high", "--check"], 6, "no_verify"),
        (["shutdown", "test", "--timeout", "1e300"], 4, "--timeout"),
        (["no-such-subcommand"], 4, "no-such-subcommand"),
    ]

    @Test(arguments: cases)
    func refusedWithTheRightCodeNamingTheValue(arguments: [String], status: Int32, words: String) throws {
        let run = try VMCtl.run(["-c", "test:///default"] + arguments)
        let shown = arguments.map { String($0.prefix(50)) }
        #expect(!run.crashed, "\(shown) crashed: \(run.stderr.suffix(500))")
        #expect(run.status == status, "\(shown): exit \(run.status), \(run.stderr.prefix(300))")
        #expect(run.stderr.contains(words), "\(shown): \(run.stderr.prefix(300))")
        #expect(!run.stderr.contains("Fatal error"))
        #expect(run.leftovers.isEmpty, "\(shown) left \(run.leftovers)")
    }

    @Test(arguments: ["", "not a uri", "test:///default\n", "://", huge, "漢字:///x"])
    func malformedConnectURIsExit4(uri: String) throws {
        let run = try VMCtl.run(["-c", uri, "list"])
        #expect(!run.crashed)
        #expect(run.status == 4, "\(uri.prefix(40).debugDescription): \(run.stderr.prefix(300))")
        #expect(run.stderr.contains("not a libvirt URI"), "\(run.stderr.prefix(300))")
    }
}
