import Foundation
import Testing
import VMDriverTestSupport

@Suite("vmctl jobs and abort on test:///default")
struct JobsCLITests {
    @Test func jobsOfANamedVMWithoutAJobIsOneRowWithNeither() throws {
        let output = try VMCtl.run("-c", "test:///default", "jobs", "test", "--json")
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try #require(try output.json() as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["vm"] as? String == "test")
        #expect(rows.first?["libvirt"] == nil)
        #expect(rows.first?["record"] == nil)
    }

    @Test func jobsOfAMissingVMExits4() throws {
        let output = try VMCtl.run("-c", "test:///default", "jobs", "no-such-vm")
        #expect(output.status == 4)
        #expect(output.stderr.contains("no-such-vm"))
    }

    @Test func abortWithNothingRunningExits5() throws {
        let output = try VMCtl.run("-c", "test:///default", "abort", "test")
        #expect(output.status == 5)
        #expect(output.stdout.isEmpty)
        #expect(output.stderr.contains("nothing to abort"))
    }

    @Test func aBadWaitExits4() throws {
        let output = try VMCtl.run("-c", "test:///default", "abort", "test", "--wait", "0")
        #expect(output.status == 4)
    }
}
