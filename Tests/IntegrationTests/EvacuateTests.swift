import Foundation
import Libvirt
import Testing
import VMDriverTestSupport

@testable import VMDriver

/// `vmctl evacuate` between the testbed's hosts: four Linux guests and one that cannot move.
@Suite("Evacuating a host", .serialized, .enabled(if: Testbed.enabled, "needs scripts/test.sh and the testbed"))
struct EvacuateTests {
    let domainType: String

    init() async throws {
        let local = try await Host.connect(Integration.uri)
        domainType = try #require(try await local.capabilities().linuxDomainType)
        try await local.close()
    }

    /// Every running VM of hosta to hostb, two at a time: the four guests move and run on hostb
    /// only, never rebooted, heartbeat going on; never more than two moves overlap (from the
    /// result's own timestamps) and two did; the guest whose name is taken on hostb is refused
    /// by its preflight (code 4), stays running on hosta, and the exit status is its code.
    @Test func fourGuestsTwoAtATimeAndOneThatCannotMove() async throws {
        let guests = (1...4).map { TestbedGuest("evac\($0)", domainType: domainType) }
        let stuck = TestbedGuest("evac-taken", domainType: domainType)
        defer {
            for guest in guests + [stuck] { guest.cleanUp() }
        }
        for guest in guests { try await guest.boot(on: .hosta) }
        try await stuck.bootBootSector(on: .hosta, domainType: domainType)
        // A VM of that name on hostb already: the move's preflight refuses it.
        let hostb = try Testbed.connection(.hostb)
        defer { try? hostb.close() }
        _ = try hostb.defineDomain(
            xml: try Integration.fill(
                "bootsector-domain.xml.in",
                ["@NAME@": stuck.name, "@DISK@": "/nonexistent.img", "@SERIAL@": "/dev/null", "@DOMAIN_TYPE@": domainType]))
        let beats = guests.map { $0.log.heartbeats().count }

        let evacuation = try VMCtl.run([
            "-c", Testbed.Name.hosta.uri, "evacuate", "--to", Testbed.Name.hostb.address, "--max-parallel", "2", "--json",
        ])
        #expect(evacuation.status == 4, "the refused VM's code: \(evacuation.stderr)")
        let json = try #require(try evacuation.json() as? [String: Any])
        let moves = try #require(json["moves"] as? [[String: Any]])
        func move(_ guest: TestbedGuest) -> [String: Any]? { moves.first { $0["vm"] as? String == guest.name } }
        for guest in guests {
            let entry = try #require(move(guest), "\(guest.name) is in the result")
            #expect(entry["code"] as? Int == 0, "\(entry)")
            #expect(entry["target"] as? String == Testbed.Name.hostb.address)
            #expect(try guest.hosts() == [.hostb], "\(guest.name) is on hostb only")
            #expect(try guest.state(on: .hostb) == .running)
        }
        let refused = try #require(move(stuck))
        #expect(refused["code"] as? Int == 4)
        #expect((refused["message"] as? String)?.contains("already exists") == true, "\(refused)")
        #expect(try stuck.state(on: .hosta) == .running, "the refused VM runs on where it was")

        // Overlap, from the timestamps the result gives: at most two, and two at some point.
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let spans = moves.compactMap { entry -> (Date, Date)? in
            guard let started = (entry["started"] as? String).flatMap(iso.date(from:)),
                let ended = (entry["ended"] as? String).flatMap(iso.date(from:))
            else { return nil }
            return (started, ended)
        }
        #expect(spans.count == moves.count)
        let overlap = spans.map { span in spans.filter { $0.0 <= span.0 && span.0 < $0.1 }.count }.max() ?? 0
        #expect(overlap == 2, "moves in flight at once: \(overlap) (\(spans))")
        #expect(json["mostAtOnce"] as? Int == 2)

        // Healthy: still beating, never rebooted.
        for (guest, count) in zip(guests, beats) {
            #expect(await guest.keepsBeating(after: count), "\(guest.name) beats on hostb")
            #expect(guest.log.boots() == 1, "\(guest.name) never rebooted")
        }
    }

    /// `vmctl migrate VM... --to DEST`: the VMs named go, one at a time with --max-parallel 1,
    /// into one table; a third guest not named stays where it is.
    @Test func migrateSeveralNamedVMsToOneDestination() async throws {
        let guests = (1...2).map { TestbedGuest("multi\($0)", domainType: domainType) }
        let bystander = TestbedGuest("multi-stay", domainType: domainType)
        defer {
            for guest in guests + [bystander] { guest.cleanUp() }
        }
        for guest in guests + [bystander] { try await guest.boot(on: .hosta) }
        let beats = guests.map { $0.log.heartbeats().count }

        let result = try VMCtl.run(
            ["-c", Testbed.Name.hosta.uri, "migrate"] + guests.map(\.name)
                + ["--to", Testbed.Name.hostb.address, "--max-parallel", "1", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try result.json() as? [String: Any])
        let moves = try #require(json["moves"] as? [[String: Any]])
        #expect(Set(moves.compactMap { $0["vm"] as? String }) == Set(guests.map(\.name)))
        #expect(moves.allSatisfy { $0["code"] as? Int == 0 }, "\(moves)")
        #expect(json["mostAtOnce"] as? Int == 1)
        for (guest, count) in zip(guests, beats) {
            #expect(try guest.hosts() == [.hostb], "\(guest.name) is on hostb only")
            #expect(await guest.keepsBeating(after: count), "\(guest.name) beats on hostb")
            #expect(guest.log.boots() == 1, "\(guest.name) never rebooted")
        }
        #expect(try bystander.hosts() == [.hosta], "the VM not named stays")
        #expect(try bystander.state(on: .hosta) == .running)
    }
}

extension EvacuateTests {
    /// Ctrl-C while the first of three moves is in flight (one at a time, 2 MiB/s): exit 2, the
    /// table lists all three as not moved, the move in flight rolled back, the others never
    /// started: each guest runs on hosta only, never rebooted; hostb holds none of them.
    @Test func ctrlCCancelsTheMoveInFlightAndStartsNoMore() async throws {
        let guests = (1...3).map { TestbedGuest("evac-int\($0)", domainType: domainType) }
        defer {
            for guest in guests { guest.cleanUp() }
        }
        for guest in guests { try await guest.boot(on: .hosta) }
        let names = guests.map(\.name)
        let command = try VMCtl.Terminal(
            ["-c", Testbed.Name.hosta.uri, "evacuate"] + names + [
                "--to", Testbed.Name.hostb.address, "--max-parallel", "1", "--bandwidth", "2",
            ])
        defer { command.cleanUp() }
        let hosta = try Testbed.connection(.hosta)
        defer { try? hosta.close() }
        let moving = await Integration.waitFor(60) {
            names.contains { name in
                guard let stats = try? hosta.lookupDomain(name: name).jobStats() else { return false }
                return stats.type != .none && (stats.dataProcessed ?? 0) > 1 << 20
            }
        }
        try #require(moving, "no move got going: \(command.stderr)")
        command.interrupt()
        let status = await command.wait(seconds: 30)
        #expect(status == 2, "\(command.stderr)")
        #expect(command.stderr.contains("cancel"), "\(command.stderr)")
        #expect(command.stdout.contains("0 of 3 moved"), "\(command.stdout)")
        for name in names { #expect(command.stdout.contains(name), "the table lists \(name)") }
        for guest in guests {
            #expect(try guest.hosts() == [.hosta], "\(guest.name) stays on hosta only")
            #expect(try guest.state(on: .hosta) == .running)
            #expect(guest.log.boots() == 1)
        }
    }
}

/// Where an evacuation sends each VM, on made-up hosts (pure).
@Suite("Evacuation targets")
struct EvacuationTargetTests {
    @Test func theTargetWithTheMostFreeMemoryLeftWinsWhileItHasRoom() {
        // 4096 and 1024 MiB free; 1000 MiB already sent to the first.
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [4096, 1024], sent: [1000, 0], inFlight: [0, 0], perTarget: 2) == 0
        )
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [4096, 1024], sent: [3500, 0], inFlight: [0, 0], perTarget: 2) == 1
        )
        // No room for another move into the first: the second, whatever its memory.
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [4096, 1024], sent: [0, 0], inFlight: [2, 0], perTarget: 2) == 1)
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [4096, 1024], sent: [0, 0], inFlight: [2, 2], perTarget: 2) == nil)
        // A target whose free memory is unknown comes last; on a tie, the first given.
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [nil, 10], sent: [0, 0], inFlight: [0, 0], perTarget: 2) == 1)
        #expect(
            EvacuationPlan.pick(memory: 512, targets: 2, free: [10, 10], sent: [0, 0], inFlight: [0, 0], perTarget: 2) == 0)
    }

}
