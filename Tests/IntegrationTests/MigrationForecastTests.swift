import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// `vmctl migrate --check`'s forecast on the testbed: the CPU verdict, the sampled dirty rate,
/// and the prediction, each beside what the raw tools show.
@Suite("Migration forecasts on the testbed", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct MigrationForecastTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    /// The dirtying guest at a 2 MiB/s cap: the check samples a dirty rate above the cap and
    /// predicts that plain pre-copy does not converge; and it does not: plain `virsh migrate
    /// --live` at the same cap goes on pass after pass without what is left shrinking, until
    /// it is aborted (the guest runs on at hosta).
    @Test func predictsThatPlainPreCopyOfTheDirtyingGuestDoesNotConvergeAndItDoesNot() async throws {
        let guest = TestbedGuest("forecast", domainType: domainType)
        defer { guest.cleanUp() }
        try await guest.boot(on: .hosta, cmdline: "vmdriver.dirty=32")
        try #require(await Integration.waitFor(30) { guest.log.lines().contains { $0.hasPrefix("VMDRIVER-DIRTY") } })

        let check = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--check", "--bandwidth", "2",
            "--policy", "plain", "--json",
        ])
        #expect(check.status == 0, "\(check.stderr)")
        let forecast = try #require((try check.json() as? [String: Any])?["forecast"] as? [String: Any])
        let cpu = try #require(forecast["cpu"] as? [String: Any])
        #expect(["identical", "superset"].contains(cpu["verdict"] as? String), "\(cpu)")
        let dirty = try #require((forecast["dirtyRate"] as? [String: Any])?["mibPerSecond"] as? Int)
        #expect(dirty > 2, "the guest dirties more than the 2 MiB/s link sends: \(dirty) MiB/s")
        let prediction = try #require(forecast["prediction"] as? [String: Any])
        #expect(prediction["converges"] as? Bool == false, "\(prediction)")
        #expect((prediction["policyStep"] as? String)?.contains("--policy plain") == true)
        // With VMDriver's policy the check names the step it will take.
        let converge = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "migrate", guest.name, Testbed.Name.hostb.address, "--check", "--bandwidth", "2",
        ])
        #expect(
            converge.stdout.contains("does not converge") && converge.stdout.contains("the policy will need"),
            "\(converge.stdout)")

        // The raw tool: plain live pre-copy at the same cap.
        let virsh = Process()
        virsh.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        virsh.arguments = [
            // --unsafe as VMDriver passes it: the disk is on storage both hosts share.
            // and the migration URI it passes (the hosts' names resolve nowhere).
            "virsh", "-c", Testbed.Name.hosta.uri, "migrate", "--live", "--p2p", "--unsafe", "--bandwidth", "2",
            "--migrateuri", "tcp://\(Testbed.Name.hostb.address)", guest.name, Testbed.Name.hostb.uri,
        ]
        virsh.standardOutput = Pipe()
        let virshErrors = Pipe()
        virsh.standardError = virshErrors
        try virsh.run()
        defer { if virsh.isRunning { virsh.terminate() } }
        let hosta = try Testbed.connection(.hosta)
        defer { try? hosta.close() }
        let domain = try hosta.lookupDomain(name: guest.name)
        var leftAtPass: [UInt64: UInt64] = [:]
        // Each pass moves what the guest dirtied (about 33 MiB) at 2 MiB/s: some 17 s.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && leftAtPass.count < 3 && virsh.isRunning {
            if let stats = try? domain.jobStats(), let pass = stats.memoryIteration, let left = stats.memoryRemaining,
                leftAtPass[pass] == nil, pass >= 2
            {
                leftAtPass[pass] = left
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let said = virsh.isRunning ? "" : String(decoding: virshErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(leftAtPass.count >= 3, "pass after pass: \(leftAtPass) \(said)")
        let passes = leftAtPass.keys.sorted()
        if let first = passes.first, let last = passes.last {
            #expect(
                leftAtPass[last]! * 2 >= leftAtPass[first]!,
                "what is left does not shrink: \(passes.map { "\($0): \(leftAtPass[$0]!)" })")
        }
        #expect(try domain.jobStats().type != .none, "still moving: it has not converged")
        try domain.abortJob()
        virsh.waitUntilExit()
        #expect(virsh.terminationStatus != 0)
        #expect(try guest.hosts() == [.hosta])
        #expect(await guest.keepsBeating(after: guest.log.heartbeats().count), "the guest runs on at hosta")
    }

    /// A shut-off VM whose CPU needs features the target's hypervisor lacks: the cold move's
    /// check is code 6 naming them, as `virsh hypervisor-cpu-compare --error` on hostb names
    /// them; nothing moves.
    @Test func aCPUTheTargetCannotGiveIsCode6NamingTheFeatures() async throws {
        let name = "vmdriver-cpu-\(UUID().uuidString.prefix(6).lowercased())"
        let image = "\(Testbed.shared)/\(name).img"
        defer {
            Integration.removeDomains(named: name, on: Testbed.Name.hosta.uri)
            try? FileManager.default.removeItem(atPath: image)
        }
        try FileManager.default.copyItem(
            atPath: Integration.fixtures.appendingPathComponent("bootsector.img").path, toPath: image)
        let cpu =
            "<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>"
            + "<feature policy='require' name='avx512f'/><feature policy='require' name='sha-ni'/></cpu>"
        let xml = try Integration.fill(
            "bootsector-domain.xml.in", ["@NAME@": name, "@DISK@": image, "@SERIAL@": "/dev/null", "@DOMAIN_TYPE@": domainType]
        ).replacingOccurrences(of: "<devices>", with: cpu + "<devices>")
        let hosta = try Testbed.connection(.hosta)
        defer { try? hosta.close() }
        _ = try hosta.defineDomain(xml: xml)

        let check = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "migrate", name, Testbed.Name.hostb.address, "--check", "--type", "cold", "--json",
        ])
        #expect(check.status == 6, "\(check.stderr)")
        let json = try #require(try check.json() as? [String: Any])
        let problems = (json["problems"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? String }
        #expect(problems.contains { $0.contains("avx512f") && $0.contains("sha-ni") }, "\(problems)")
        let verdict = try #require((json["forecast"] as? [String: Any])?["cpu"] as? [String: Any])
        #expect(verdict["verdict"] as? String == "incompatible")
        #expect(Set(verdict["missingFeatures"] as? [String] ?? []) == ["avx512f", "sha-ni"])
        // The raw tool says the same.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-cpu.xml")
        try cpu.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let raw = #expect(throws: ToolFailed.self) {
            try run(
                "virsh", ["-c", Testbed.Name.hostb.uri, "hypervisor-cpu-compare", "--virttype", domainType, "--error", file.path])
        }
        #expect(raw?.stderr.contains("avx512f") == true, "\(raw?.stderr ?? "")")
        #expect(try Testbed.domains(on: .hostb, prefix: name).isEmpty, "nothing moved")
    }

    /// `--security normal`: the files vmctl's TLS connection uses, their expiry as certtool
    /// reads them, and hostb's certificate as its libvirtd presents it at the address dialled.
    @Test func tlsChecksTheFilesAndTheTargetsCertificateForTheAddressDialled() async throws {
        let name = "vmdriver-tls-\(UUID().uuidString.prefix(6).lowercased())"
        let image = "\(Testbed.shared)/\(name).img"
        defer {
            Integration.removeDomains(named: name, on: Testbed.Name.hosta.uri)
            try? FileManager.default.removeItem(atPath: image)
        }
        try FileManager.default.copyItem(
            atPath: Integration.fixtures.appendingPathComponent("bootsector.img").path, toPath: image)
        let hosta = try Testbed.connection(.hosta)
        defer { try? hosta.close() }
        _ = try hosta.defineDomain(
            xml: try Integration.fill(
                "bootsector-domain.xml.in",
                ["@NAME@": name, "@DISK@": image, "@SERIAL@": "/dev/null", "@DOMAIN_TYPE@": domainType]))

        let check = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "migrate", name, Testbed.Name.hostb.address, "--check", "--type", "cold",
            "--security", "normal", "--pkipath", Testbed.clientPKI, "--json",
        ])
        #expect(check.status == 0, "\(check.stderr)")
        let json = try #require(try check.json() as? [String: Any])
        let tls = try #require((json["forecast"] as? [String: Any])?["tls"] as? [String: Any], "\(check.stdout)")
        let files = tls["files"] as? [[String: Any]] ?? []
        #expect(
            files.compactMap { $0["path"] as? String }
                == ["cacert.pem", "clientcert.pem", "clientkey.pem"].map { "\(Testbed.clientPKI)/\($0)" })
        // The expiry is the one certtool itself shows for the file.
        let raw = try run("certtool", ["--certificate-info", "--infile", "\(Testbed.clientPKI)/clientcert.pem"])
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let expires = try #require((files[1]["expires"] as? String).flatMap(iso.date(from:)))
        #expect(raw.contains("Not After: \(TLSProbe.certtoolString(expires))"), "\(raw)")
        #expect(tls["dialled"] as? String == "\(Testbed.Name.hostb.address):16514")
        #expect(tls["trusted"] as? Bool == true && tls["namesAddress"] as? Bool == true, "\(tls)")
        #expect((tls["serverSubject"] as? String)?.contains("CN=hostb") == true, "\(tls)")
    }
}
