internal import CLibvirt
import Foundation

/// One value of a libvirt typed parameter (`virTypedParameter`).
public enum TypedValue: Sendable, Hashable {
    /// VIR_TYPED_PARAM_INT
    case int(Int32)
    /// VIR_TYPED_PARAM_UINT
    case uint(UInt32)
    /// VIR_TYPED_PARAM_LLONG
    case llong(Int64)
    /// VIR_TYPED_PARAM_ULLONG
    case ullong(UInt64)
    /// VIR_TYPED_PARAM_DOUBLE
    case double(Double)
    /// VIR_TYPED_PARAM_BOOLEAN
    case boolean(Bool)
    /// VIR_TYPED_PARAM_STRING
    case string(String)

    /// The value as an unsigned 64-bit integer, for counters libvirt reports in any int type.
    public var unsigned: UInt64? {
        switch self {
        case .int(let v): v >= 0 ? UInt64(v) : nil
        case .uint(let v): UInt64(v)
        case .llong(let v): v >= 0 ? UInt64(v) : nil
        case .ullong(let v): v
        case .double(let v): v >= 0 ? UInt64(v) : nil
        case .boolean, .string: nil
        }
    }
}

/// A list of typed parameters packed for libvirt. It owns the C array libvirt's
/// `virTypedParamsAdd*` functions grow, and frees it (strings included) in `deinit`.
final class TypedParameterList {
    private(set) var parameters: virTypedParameterPtr? = nil
    private(set) var count: Int32 = 0
    private var capacity: Int32 = 0

    init() {}

    init(_ entries: [(String, TypedValue)]) throws(LibvirtError) {
        for (key, value) in entries { try add(key, value) }
    }

    deinit { virTypedParamsFree(parameters, count) }

    /// Appends one parameter. Calls `virTypedParamsAdd*`.
    func add(_ key: String, _ value: TypedValue) throws(LibvirtError) {
        switch value {
        case .int(let v): try call("virTypedParamsAddInt") { virTypedParamsAddInt(&parameters, &count, &capacity, key, v) }
        case .uint(let v): try call("virTypedParamsAddUInt") { virTypedParamsAddUInt(&parameters, &count, &capacity, key, v) }
        case .llong(let v): try call("virTypedParamsAddLLong") { virTypedParamsAddLLong(&parameters, &count, &capacity, key, v) }
        case .ullong(let v):
            try call("virTypedParamsAddULLong") { virTypedParamsAddULLong(&parameters, &count, &capacity, key, v) }
        case .double(let v):
            try call("virTypedParamsAddDouble") { virTypedParamsAddDouble(&parameters, &count, &capacity, key, v) }
        case .boolean(let v):
            try call("virTypedParamsAddBoolean") { virTypedParamsAddBoolean(&parameters, &count, &capacity, key, v ? 1 : 0) }
        case .string(let v):
            try call("virTypedParamsAddString") { virTypedParamsAddString(&parameters, &count, &capacity, key, v) }
        }
    }

    /// The entries, decoded back from the C array.
    var entries: [(String, TypedValue)] { Self.decode(parameters, count: count) }

    /// Decodes a C array of typed parameters; unknown types are skipped.
    static func decode(_ parameters: virTypedParameterPtr?, count: Int32) -> [(String, TypedValue)] {
        guard let parameters, count > 0 else { return [] }
        var result: [(String, TypedValue)] = []
        result.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let parameter = parameters[index]
            let key = withUnsafeBytes(of: parameter.field) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            let value: TypedValue
            switch Int32(parameter.type) {
            case Int32(VIR_TYPED_PARAM_INT.rawValue): value = .int(parameter.value.i)
            case Int32(VIR_TYPED_PARAM_UINT.rawValue): value = .uint(parameter.value.ui)
            case Int32(VIR_TYPED_PARAM_LLONG.rawValue): value = .llong(parameter.value.l)
            case Int32(VIR_TYPED_PARAM_ULLONG.rawValue): value = .ullong(parameter.value.ul)
            case Int32(VIR_TYPED_PARAM_DOUBLE.rawValue): value = .double(parameter.value.d)
            case Int32(VIR_TYPED_PARAM_BOOLEAN.rawValue): value = .boolean(parameter.value.b != 0)
            case Int32(VIR_TYPED_PARAM_STRING.rawValue):
                value = .string(parameter.value.s.map { String(cString: $0) } ?? "")
            default: continue
            }
            result.append((key, value))
        }
        return result
    }
}

/// A struct of optionals that maps to libvirt typed parameters through one key table, so the
/// key of each field is written once and used both ways.
public protocol TypedParameterRecord: Sendable, Equatable {
    init()
    /// Every field with its libvirt key.
    static var fields: [TypedParameterField<Self>] { get }
}

/// One row of a key table: a libvirt key, the field it fills, and the C type it travels as.
public struct TypedParameterField<Record>: @unchecked Sendable {
    // Key paths are immutable values; @unchecked because WritableKeyPath is not declared Sendable.
    public let key: String
    /// The values the field contributes (several for a list, such as `migrate_disks`).
    let values: (Record) -> [TypedValue]
    /// Stores one value read back (a list appends).
    let set: (inout Record, TypedValue) -> Void

    /// The field's (first) value.
    var get: (Record) -> TypedValue? { { values($0).first } }

    private static func single(
        _ key: String, _ read: @escaping (Record) -> TypedValue?, _ write: @escaping (inout Record, TypedValue) -> Void
    ) -> Self {
        Self(key: key, values: { read($0).map { [$0] } ?? [] }, set: write)
    }

    public static func ullong(_ key: String, _ path: WritableKeyPath<Record, UInt64?>) -> Self {
        single(key, { $0[keyPath: path].map(TypedValue.ullong) }, { $0[keyPath: path] = $1.unsigned })
    }
    public static func int(_ key: String, _ path: WritableKeyPath<Record, Int32?>) -> Self {
        single(key, { $0[keyPath: path].map(TypedValue.int) }) {
            if case .int(let v) = $1 { $0[keyPath: path] = v }
        }
    }
    public static func string(_ key: String, _ path: WritableKeyPath<Record, String?>) -> Self {
        single(key, { $0[keyPath: path].map(TypedValue.string) }) {
            if case .string(let v) = $1 { $0[keyPath: path] = v }
        }
    }
    public static func boolean(_ key: String, _ path: WritableKeyPath<Record, Bool?>) -> Self {
        single(key, { $0[keyPath: path].map(TypedValue.boolean) }) {
            if case .boolean(let v) = $1 { $0[keyPath: path] = v }
        }
    }
    /// A key libvirt accepts several times, one string each (`migrate_disks`, `compression`).
    public static func strings(_ key: String, _ path: WritableKeyPath<Record, [String]?>) -> Self {
        Self(key: key, values: { ($0[keyPath: path] ?? []).map(TypedValue.string) }) {
            if case .string(let v) = $1 { $0[keyPath: path] = ($0[keyPath: path] ?? []) + [v] }
        }
    }
}

extension TypedParameterRecord {
    /// The fields that are set, as (key, value) pairs in key-table order.
    public var typedParameters: [(String, TypedValue)] {
        Self.fields.flatMap { field in field.values(self).map { (field.key, $0) } }
    }

    /// Fills a record from (key, value) pairs; unknown keys are ignored.
    public init(typedParameters: [(String, TypedValue)]) {
        self.init()
        let table = Dictionary(Self.fields.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for (key, value) in typedParameters { table[key]?.set(&self, value) }
    }

    /// Packs the record into libvirt's C representation and back: what libvirt would see.
    /// Used by tests to prove every key survives the trip.
    public func roundTripThroughLibvirt() throws(LibvirtError) -> Self {
        let list = try TypedParameterList(typedParameters)
        return Self(typedParameters: list.entries)
    }
}
