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
