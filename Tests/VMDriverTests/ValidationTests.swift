import Testing

@testable import VMDriver

/// Names and paths follow one set of rules: a control character is one to the VM-name check,
/// the clone destination check and the home-folder check alike (they disagreed on DEL and C1).
@Suite("Names and paths")
struct ValidationTests {
    static let controls: [Unicode.Scalar] = [
        "\u{0}", "\u{1F}", "\u{7F}", "\u{80}", "\u{85}", "\u{9B}", "\u{9F}", "\u{2028}", "\u{2029}",
    ]

    @Test(arguments: controls)
    func everyCheckRefusesTheSameControlCharacters(control: Unicode.Scalar) {
        let name = "web\(Character(control))1"
        let path = "/srv/vms/\(name)"
        #expect(Validation.nameProblem(name) != nil, "name with U+\(String(control.value, radix: 16))")
        #expect(ClonePlan.badDestination(path) == "has control characters in it")
        #expect(MigrationPlan.badHome(path) == "has control characters in it")
    }

    @Test func ordinaryNamesAndPathsPass() {
        for name in ["web", "web-1", "db_2", "Ünïcode name", "a&b<c>\"d\""] {
            #expect(Validation.nameProblem(name) == nil, "\(name)")
        }
        for path in ["/srv/vms", "/var/lib/libvirt/images/web-1", "/srv/vms/clone.xml"] {
            #expect(ClonePlan.badDestination(path) == nil, "\(path)")
            #expect(MigrationPlan.badHome(path) == nil, "\(path)")
        }
    }

    @Test func relativeAndDotPathsAreRefusedEverywhere() {
        for path in ["", "srv/vms", "/srv/../etc", "/srv/./vms"] {
            #expect(ClonePlan.badDestination(path) != nil, "\(path)")
            #expect(MigrationPlan.badHome(path) != nil, "\(path)")
        }
        #expect(MigrationPlan.badHome("/") == "is the root folder")
        #expect(ClonePlan.badDestination("/srv/.xml") == "names no file (.xml alone)")
    }
}

/// The pre-copy model behind `migrate --check`'s prediction (pure).
@Suite("Pre-copy predictions")
struct PreCopyPredictionTests {
    @Test func anIdleGuestConvergesAndAFastDirtierDoesNot() {
        // 1024 MiB at 100 MiB/s, 10 MiB/s dirtied: 10.24 s, then 1.02 s, then 0.1 s ≤ 300 ms.
        let idle = MigrationForecast.Prediction.model(
            memoryMiB: 1024, bandwidthMiBps: 100, dirtyMiBps: 10, downtimeLimitMilliseconds: 300, policy: .plain, postcopy: false)
        #expect(idle.converges)
        #expect(idle.passes == 3)
        #expect(abs((idle.seconds ?? 0) - (10.24 + 1.024 + 0.1024)) < 0.01)
        #expect(idle.downtimeMilliseconds == 102)
        #expect(idle.policyStep == "none")
        // Dirtying faster than the link sends: never.
        let busy = MigrationForecast.Prediction.model(
            memoryMiB: 256, bandwidthMiBps: 2, dirtyMiBps: 30, downtimeLimitMilliseconds: 300, policy: .plain, postcopy: false)
        #expect(!busy.converges)
        #expect(busy.passes == nil)
        #expect(busy.policyStep.contains("--policy plain"))
        let policy = MigrationForecast.Prediction.model(
            memoryMiB: 256, bandwidthMiBps: 2, dirtyMiBps: 30, downtimeLimitMilliseconds: 300, policy: .converge, postcopy: true)
        #expect(policy.policyStep.contains("auto-converge") && policy.policyStep.contains("post-copy"))
        // A small guest whose dirty set fits a raised downtime: that step.
        let small = MigrationForecast.Prediction.model(
            memoryMiB: 64, bandwidthMiBps: 100, dirtyMiBps: 120, downtimeLimitMilliseconds: 100, policy: .converge,
            postcopy: false)
        #expect(!small.converges)
        #expect(small.policyStep.contains("allowed downtime"))
    }
}
