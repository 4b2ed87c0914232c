import Foundation

/// A CIM instance as CIM clients pass one inside a string (an "embedded instance"): CIM-XML
/// (DSP0201 `<INSTANCE CLASSNAME=…><PROPERTY NAME=… TYPE=…><VALUE>…`, what WMI's GetText and
/// WBEM clients write) or MOF text (`instance of CLASS { Name = value; };`).
public struct CIMInstance: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case null
        case scalar(String)
        case array([String])
    }

    public var className: String
    /// Property names as written; look them up with `self[name]`, which ignores case as CIM does.
    public var properties: [(name: String, value: Value)]

    public static func == (lhs: CIMInstance, rhs: CIMInstance) -> Bool {
        lhs.className == rhs.className && lhs.properties.map(\.name) == rhs.properties.map(\.name)
            && lhs.properties.map(\.value) == rhs.properties.map(\.value)
    }

    public subscript(name: String) -> Value? {
        properties.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Parses either form. `what` names the parameter in errors.
    /// - Throws: code 4 for text that is neither a well-formed CIM-XML INSTANCE nor MOF.
    public init(parsing text: String, what: String) throws(VMDriverError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("<") {
            self = try Self.xml(trimmed, what: what)
        } else {
            self = try Self.mof(trimmed, what: what)
        }
    }

    private init(className: String, properties: [(name: String, value: Value)]) {
        self.className = className
        self.properties = properties
    }

    private static func xml(_ text: String, what: String) throws(VMDriverError) -> CIMInstance {
        let root: XMLTree
        do {
            root = try XMLTree.parse(text)
        } catch {
            throw VMDriverError(.invalidParameter, "\(what) is not well-formed CIM-XML: \(error)")
        }
        // An INSTANCE, possibly inside VALUE.NAMEDINSTANCE or similar wrappers.
        func find(_ node: XMLTree) -> XMLTree? {
            if node.name == "INSTANCE" { return node }
            for child in node.children { if let found = find(child) { return found } }
            return nil
        }
        guard let instance = find(root), let className = instance.attributes["CLASSNAME"], !className.isEmpty else {
            throw VMDriverError(.invalidParameter, "\(what) holds no <INSTANCE CLASSNAME=…>")
        }
        var properties: [(name: String, value: Value)] = []
        for property in instance.children {
            guard let name = property.attributes["NAME"], !name.isEmpty else {
                throw VMDriverError(.invalidParameter, "\(what): a <\(property.name)> has no NAME")
            }
            switch property.name {
            case "PROPERTY", "PROPERTY.REFERENCE":
                properties.append((name, property.child("VALUE").map { .scalar($0.text) } ?? .null))
            case "PROPERTY.ARRAY":
                if let array = property.child("VALUE.ARRAY") {
                    properties.append((name, .array(array.children("VALUE").map(\.text))))
                } else {
                    properties.append((name, .null))
                }
            case "QUALIFIER": continue
            default:
                throw VMDriverError(.invalidParameter, "\(what): <\(property.name)> is not a CIM-XML property")
            }
        }
        return CIMInstance(className: className, properties: properties)
    }

    /// `instance of CLASS { Name = 2; Text = "a\"b"; List = {1, 2}; Nothing = NULL; };`
    private static func mof(_ text: String, what: String) throws(VMDriverError) -> CIMInstance {
        var scanner = MOFScanner(text: text, what: what)
        guard try scanner.word()?.lowercased() == "instance", try scanner.word()?.lowercased() == "of",
            let className = try scanner.word()
        else {
            throw VMDriverError(.invalidParameter, "\(what) is neither CIM-XML nor MOF (instance of CLASS { … };)")
        }
        try scanner.expect("{")
        var properties: [(name: String, value: Value)] = []
        while try !scanner.take("}") {
            guard let name = try scanner.word() else { throw scanner.error("a property name") }
            try scanner.expect("=")
            let value: Value
            if try scanner.take("{") {
                var items: [String] = []
                if try !scanner.take("}") {
                    repeat { items.append(try scanner.scalar()) } while try scanner.take(",")
                    try scanner.expect("}")
                }
                value = .array(items)
            } else {
                let item = try scanner.scalar(allowNull: true)
                value = item == "\u{0}NULL" ? .null : .scalar(item)
            }
            try scanner.expect(";")
            properties.append((name, value))
        }
        _ = try scanner.take(";")
        guard scanner.atEnd else { throw scanner.error("the end after '};'") }
        return CIMInstance(className: className, properties: properties)
    }
}

/// A small scanner for MOF instance text.
private struct MOFScanner {
    let scalars: [Unicode.Scalar]
    var index = 0
    let what: String

    init(text: String, what: String) {
        scalars = Array(text.unicodeScalars)
        self.what = what
    }

    func error(_ expected: String) -> VMDriverError {
        VMDriverError(.invalidParameter, "\(what): malformed MOF, expected \(expected) at character \(index)")
    }

    mutating func skipSpace() {
        while index < scalars.count {
            if scalars[index].properties.isWhitespace {
                index += 1
            } else if scalars[index] == "/", index + 1 < scalars.count, scalars[index + 1] == "/" {
                while index < scalars.count && scalars[index] != "\n" { index += 1 }
            } else {
                return
            }
        }
    }

    var atEnd: Bool {
        mutating get {
            skipSpace()
            return index >= scalars.count
        }
    }

    mutating func take(_ token: Unicode.Scalar) throws(VMDriverError) -> Bool {
        skipSpace()
        guard index < scalars.count, scalars[index] == token else { return false }
        index += 1
        return true
    }

    mutating func expect(_ token: Unicode.Scalar) throws(VMDriverError) {
        guard try take(token) else { throw error("'\(token)'") }
    }

    mutating func word() throws(VMDriverError) -> String? {
        skipSpace()
        var result = String.UnicodeScalarView()
        while index < scalars.count,
            scalars[index].properties.isAlphabetic || ("0"..."9").contains(scalars[index])
                || scalars[index] == "_"
        {
            result.append(scalars[index])
            index += 1
        }
        return result.isEmpty ? nil : String(result)
    }

    /// A number, TRUE/FALSE, a quoted string, or (with allowNull) NULL as "\0NULL".
    mutating func scalar(allowNull: Bool = false) throws(VMDriverError) -> String {
        skipSpace()
        guard index < scalars.count else { throw error("a value") }
        if scalars[index] == "\"" {
            index += 1
            var result = String.UnicodeScalarView()
            while index < scalars.count {
                let scalar = scalars[index]
                index += 1
                if scalar == "\"" { return String(result) }
                if scalar == "\\" {
                    guard index < scalars.count else { break }
                    let escaped = scalars[index]
                    index += 1
                    switch escaped {
                    case "n": result.append("\n")
                    case "t": result.append("\t")
                    default: result.append(escaped)
                    }
                } else {
                    result.append(scalar)
                }
            }
            throw error("a closing quote")
        }
        var result = String.UnicodeScalarView()
        while index < scalars.count,
            scalars[index].properties.isAlphabetic || ("0"..."9").contains(scalars[index])
                || "+-._".unicodeScalars.contains(scalars[index])
        {
            result.append(scalars[index])
            index += 1
        }
        let word = String(result)
        guard !word.isEmpty else { throw error("a value") }
        if word.uppercased() == "NULL" {
            guard allowNull else { throw error("a value (NULL is not an array element)") }
            return "\u{0}NULL"
        }
        return word
    }
}

/// What CIM's MigrateVirtualSystemToHost parameters ask, as VMDriver's migration options.
///
/// MigrationSettingData (CIM_VirtualSystemMigrationSettingData or a subclass: KVM_, Msvm_):
/// MigrationType as libvirt-cim reads it — 0 (or none) auto, 1 other/offline and 4 restart
/// cold, 2 live hot, 3 resume warm — plus Hyper-V's 32768 (virtual system: hot, storage left as
/// it is) and 32771 (virtual system and storage: hot, disks copied); 32769, 32770 and 32772
/// (storage only, staged, storage check) are code 1. TransportType 3 TLS → security normal,
/// 4 TLS strict → high, 5 TCP → low; 2 SSH and the others are code 1 (give the destination
/// as a qemu+ssh:// URI instead). Bandwidth in MiB/s (BandwidthUnit absent or "byte*2^20/second").
/// Priority is accepted and has no effect (each migration runs at once).
///
/// NewSystemSettingData: ElementName → the VM's new name. NewResourceSettingData: ResourceType
/// 3 (processor) VirtualQuantity → vCPUs; 4 (memory) VirtualQuantity in AllocationUnits
/// (byte*2^20 by default) → memory; 31 (logical disk) or 17 (disk drive) HostResource → the
/// folder the disks go to (`home`).
///
/// An unknown property is code 6 naming it; a malformed instance code 4.
public struct CIMMigrationRequest: Sendable {
    public var options: MigrationOptions

    public init(
        migrationSettingData: String?, newSystemSettingData: String?, newResourceSettingData: [String],
        base: MigrationOptions = MigrationOptions()
    ) throws(VMDriverError) {
        var options = base
        if let text = migrationSettingData, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let instance = try CIMInstance(parsing: text, what: "MigrationSettingData")
            try Self.check(
                instance, classSuffix: "VirtualSystemMigrationSettingData", what: "MigrationSettingData", known: Self.settingKeys)
            if let type = try Self.integer(instance, "MigrationType") {
                switch type {
                case 0: options.type = .auto
                case 1, 4: options.type = .cold
                case 2: options.type = .hot
                case 3: options.type = .warm
                case 32768:
                    options.type = .hot
                    options.storage = .shared
                case 32771:
                    options.type = .hot
                    options.storage = .copy
                case 32769, 32770, 32772:
                    throw VMDriverError(
                        .notSupported,
                        "MigrationType \(type) (Hyper-V's storage-only, staged or storage-check move) is not supported: VMDriver moves the VM, with its storage or not"
                    )
                default:
                    throw VMDriverError(.invalidParameter, "MigrationType \(type) is not one of 0-4 or 32768-32772")
                }
            }
            if let transport = try Self.integer(instance, "TransportType") {
                switch transport {
                case 0: break
                case 3: options.security = .normal
                case 4: options.security = .high
                case 5: options.security = .low
                case 2:
                    throw VMDriverError(
                        .notSupported,
                        "TransportType 2 (SSH): VMDriver's peers are reached over TCP or TLS; give DestinationHost as a qemu+ssh:// URI to use SSH"
                    )
                default:
                    throw VMDriverError(
                        .notSupported, "TransportType \(transport) is not supported: use 3 (TLS), 4 (TLS strict) or 5 (TCP)")
                }
            }
            if let bandwidth = try Self.integer(instance, "Bandwidth"), bandwidth > 0 {
                if case .scalar(let unit)? = instance["BandwidthUnit"],
                    !["byte*2^20/second", "byte*2^20 / second", "mebibyte per second"].contains(unit.lowercased())
                {
                    throw VMDriverError(
                        .incompatibleParameters,
                        "BandwidthUnit '\(unit)' is not supported: give Bandwidth in byte*2^20/second (MiB/s)")
                }
                options.bandwidthMiBps = UInt64(bandwidth)
            }
            _ = try Self.integer(instance, "Priority")
        }
        if let text = newSystemSettingData, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let instance = try CIMInstance(parsing: text, what: "NewSystemSettingData")
            try Self.check(
                instance, classSuffix: "VirtualSystemSettingData", what: "NewSystemSettingData", known: Self.systemKeys)
            if case .scalar(let name)? = instance["ElementName"], !name.isEmpty { options.newName = name }
        }
        var folders: [String] = []
        for (index, text) in newResourceSettingData.enumerated() {
            let what = "NewResourceSettingData[\(index)]"
            let instance = try CIMInstance(parsing: text, what: what)
            try Self.check(instance, classSuffix: "SettingData", what: what, known: Self.resourceKeys)
            guard let type = try Self.integer(instance, "ResourceType") else {
                throw VMDriverError(.invalidParameter, "\(what) has no ResourceType")
            }
            switch type {
            case 3:
                guard let count = try Self.integer(instance, "VirtualQuantity"), count > 0, count <= UInt32.max else {
                    throw VMDriverError(
                        .invalidParameter, "\(what): a processor setting needs VirtualQuantity, the number of vCPUs")
                }
                options.vcpus = UInt32(count)
            case 4:
                guard let quantity = try Self.integer(instance, "VirtualQuantity"), quantity > 0 else {
                    throw VMDriverError(.invalidParameter, "\(what): a memory setting needs VirtualQuantity")
                }
                var unit = "byte*2^20"
                if case .scalar(let given)? = instance["AllocationUnits"] { unit = given }
                let mebibytes: Int64? =
                    switch unit.lowercased().replacingOccurrences(of: " ", with: "") {
                    case "byte*2^20", "megabytes", "mb", "mib": quantity
                    case "byte*2^30", "gigabytes", "gb", "gib": quantity * 1024
                    case "byte*2^10", "kilobytes", "kb", "kib": quantity / 1024
                    case "byte", "bytes": quantity >> 20
                    default: nil
                    }
                guard let mebibytes, mebibytes > 0 else {
                    throw VMDriverError(
                        .incompatibleParameters, "\(what): AllocationUnits '\(unit)' is not a unit of memory VMDriver reads")
                }
                options.memoryMiB = UInt64(mebibytes)
            case 17, 31:
                guard case .array(let paths)? = instance["HostResource"] ?? nil, let path = paths.first, path.hasPrefix("/")
                else {
                    if case .scalar(let path)? = instance["HostResource"], path.hasPrefix("/") {
                        folders.append((path as NSString).deletingLastPathComponent)
                        continue
                    }
                    throw VMDriverError(
                        .invalidParameter, "\(what): a disk setting needs HostResource, an absolute path on the target")
                }
                folders.append((path as NSString).deletingLastPathComponent)
            default:
                throw VMDriverError(
                    .incompatibleParameters,
                    "\(what): ResourceType \(type) is not one VMDriver changes in a move (3 processor, 4 memory, 17/31 disk)")
            }
        }
        if let first = folders.first {
            guard folders.allSatisfy({ $0 == first }) else {
                throw VMDriverError(
                    .incompatibleParameters,
                    "the disk settings name different folders (\(Set(folders).sorted().joined(separator: ", "))): VMDriver puts a VM's disks in one"
                )
            }
            options.home = first
        }
        self.options = options
    }

    static let common: Set<String> = [
        "instanceid", "elementname", "caption", "description", "changeabletype", "configurationname",
    ]
    static let settingKeys = common.union([
        "migrationtype", "transporttype", "othertransporttype", "priority", "bandwidth", "bandwidthunit",
    ])
    static let systemKeys = common.union(["virtualsystemidentifier", "virtualsystemtype", "notes", "creationtime"])
    static let resourceKeys = common.union([
        "resourcetype", "otherresourcetype", "resourcesubtype", "virtualquantity", "virtualquantityunits", "allocationunits",
        "hostresource", "reservation", "limit", "weight", "poolid", "parent", "address", "connection", "automaticallocation",
        "automaticdeallocation", "consumervisibility", "mappingbehavior",
    ])

    private static func check(_ instance: CIMInstance, classSuffix: String, what: String, known: Set<String>)
        throws(VMDriverError)
    {
        guard instance.className.hasSuffix(classSuffix) else {
            throw VMDriverError(
                .invalidParameter, "\(what) is an instance of \(instance.className), not of a …\(classSuffix) class")
        }
        if let unknown = instance.properties.first(where: { !known.contains($0.name.lowercased()) }) {
            throw VMDriverError(.incompatibleParameters, "\(what): property \(unknown.name) is not one VMDriver maps")
        }
    }

    private static func integer(_ instance: CIMInstance, _ name: String) throws(VMDriverError) -> Int64? {
        switch instance[name] {
        case nil, .null?: return nil
        case .scalar(let text)?:
            guard let value = Int64(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                throw VMDriverError(.invalidParameter, "\(name) = '\(text)' is not an unsigned integer")
            }
            return value
        case .array?: throw VMDriverError(.invalidParameter, "\(name) is an array, and CIM defines it as one value")
        }
    }
}
