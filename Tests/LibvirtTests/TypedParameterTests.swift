import Testing

@testable import Libvirt

@Suite("Typed parameters")
struct TypedParameterTests {
    /// Every key of the job-stats table survives packing into libvirt's C array and back, each to
    /// its own field: a key written twice or a field mapped to the wrong key fails here.
    @Test func everyJobStatsKeyRoundTripsThroughLibvirt() throws {
        var stats = Domain.JobStats()
        var next: UInt64 = 1
        for field in Domain.JobStats.fields {
            switch field.get(stats) {
            case .some: Issue.record("field \(field.key) set before we set it: two keys share a field")
            case .none: break
            }
            // Give each field a distinct value of its own type.
            let value: TypedValue
            switch field.key {
            case "operation", "auto_converge_throttle": value = .int(Int32(next))
            case "success": value = .boolean(true)
            case "errmsg": value = .string("error \(next)")
            default: value = .ullong(next * 1000)
            }
            field.set(&stats, value)
            #expect(field.get(stats) == value, "field \(field.key) did not keep its value")
            next += 1
        }
        let back = try stats.roundTripThroughLibvirt()
        #expect(back == stats)
        for field in Domain.JobStats.fields {
            #expect(field.get(back) != nil, "key \(field.key) was lost on the way through libvirt")
        }
    }

    @Test func keysAreUnique() {
        let keys = Domain.JobStats.fields.map(\.key)
        #expect(Set(keys).count == keys.count)
    }

    @Test func everyValueTypePacksAndDecodes() throws {
        let entries: [(String, TypedValue)] = [
            ("i", .int(-5)), ("u", .uint(7)), ("l", .llong(-1 << 40)), ("ul", .ullong(1 << 60)),
            ("d", .double(2.5)), ("b", .boolean(true)), ("s", .string("héllo <&>")),
        ]
        let list = try TypedParameterList(entries)
        #expect(list.count == Int32(entries.count))
        let decoded = list.entries
        #expect(decoded.map(\.0) == entries.map(\.0))
        #expect(decoded.map(\.1) == entries.map(\.1))
    }
}

@Suite("Migration parameters")
struct MigrationParameterTests {
    /// Every key of the migration table, lists included, survives libvirt's C representation.
    @Test func everyKeyRoundTripsThroughLibvirt() throws {
        var parameters = Domain.MigrationParameters()
        parameters.migrateURI = "tcp://10.77.0.2"
        parameters.destinationName = "web-moved"
        parameters.destinationXML = "<domain/>"
        parameters.persistentXML = "<domain type='kvm'/>"
        parameters.bandwidth = 20
        parameters.bandwidthPostcopy = 1 << 30
        parameters.listenAddress = "10.77.0.2"
        parameters.migrateDisks = ["vda", "vdb"]
        parameters.disksPort = 49153
        parameters.disksURI = "tcp://10.77.0.2:49153"
        parameters.compression = ["xbzrle", "mt"]
        parameters.autoConvergeInitial = 20
        parameters.autoConvergeIncrement = 10
        parameters.parallelConnections = 4
        parameters.tlsDestination = "hostb"
        let entries = parameters.typedParameters
        // Every key of the table is used, and no two fields share one.
        #expect(Set(entries.map(\.0)) == Set(Domain.MigrationParameters.fields.map(\.key)))
        #expect(Set(Domain.MigrationParameters.fields.map(\.key)).count == Domain.MigrationParameters.fields.count)
        #expect(entries.filter { $0.0 == "migrate_disks" }.count == 2)
        #expect(try parameters.roundTripThroughLibvirt() == parameters)
    }
}
