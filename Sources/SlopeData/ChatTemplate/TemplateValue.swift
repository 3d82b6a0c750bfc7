import FoundationEssentials
import OrderedCollections

/// A value inside a chat template, with Python's semantics as Jinja gives them (templates are written against
/// Jinja on Python: `True` prints as `True`, `1 / 2` is `0.5`, lists print as `['a', 'b']`).
public indirect enum TemplateValue: Sendable {
    /// A name or key that is not there (`name` says which, for errors). Prints as nothing and is false; anything
    /// more (an attribute, arithmetic, a call) is an error, as with Jinja's default `Undefined`.
    case undefined(name: String)
    case none
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case list([TemplateValue])
    case dictionary(OrderedDictionary<String, TemplateValue>)
    /// `namespace(…)`: the one mutable object, so a loop can carry a value out (`{% set ns.found = true %}`).
    case namespace(TemplateNamespace)
    /// A function, filter-less global, macro or bound method.
    case callable(TemplateCallable)

    public init(_ string: String) { self = .string(string) }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// The most lists and dictionaries nested in one value. Printing, comparing and `tojson` recurse per level, so
    /// templates (and request JSON) may not build values deeper than this.
    static let maximumDepth = 64

    /// How deeply lists and dictionaries nest in this value (0 for a scalar), counting no further than `limit`.
    func depth(limit: Int = maximumDepth + 1) -> Int {
        guard limit > 0 else { return 0 }
        switch self {
        case .list(let items): return 1 + (items.lazy.map { $0.depth(limit: limit - 1) }.max() ?? 0)
        case .dictionary(let items): return 1 + (items.values.lazy.map { $0.depth(limit: limit - 1) }.max() ?? 0)
        default: return 0  // (a namespace is opaque to printing and comparing: it ends the nesting)
        }
    }

    /// A list or dictionary of `items`, refused where it would nest deeper than `maximumDepth`.
    static func container(_ make: () -> TemplateValue) throws -> TemplateValue {
        let value = make()
        guard value.depth() <= maximumDepth else { throw TemplateError("a value nested deeper than \(maximumDepth) lists or dictionaries") }
        return value
    }

    /// Python's truth: empty, zero, none and undefined are false.
    var isTrue: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let value): return value
        case .integer(let value): return value != 0
        case .number(let value): return value != 0
        case .string(let value): return !value.isEmpty
        case .list(let value): return !value.isEmpty
        case .dictionary(let value): return !value.isEmpty
        case .namespace, .callable: return true
        }
    }

    /// What `{{ value }}` prints (Python's `str`).
    var printed: String {
        switch self {
        case .undefined: return ""
        case .string(let value): return value
        default: return represented
        }
    }

    /// Python's `repr`, as lists and dictionaries print their items.
    var represented: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let value): return value ? "True" : "False"
        case .integer(let value): return String(value)
        case .number(let value): return Self.pythonFloat(value)
        case .string(let value): return Self.pythonQuoted(value)
        case .list(let items): return "[" + items.map(\.represented).joined(separator: ", ") + "]"
        case .dictionary(let items): return "{" + items.map { Self.pythonQuoted($0.key) + ": " + $0.value.represented }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .callable(let function): return "<function \(function.name)>"
        }
    }

    /// The kind of value, for errors ("cannot add a list and an integer").
    var kind: String {
        switch self {
        case .undefined(let name): return "undefined '\(name)'"
        case .none: return "none"
        case .bool: return "boolean"
        case .integer: return "integer"
        case .number: return "float"
        case .string: return "string"
        case .list: return "list"
        case .dictionary: return "dictionary"
        case .namespace: return "namespace"
        case .callable: return "function"
        }
    }

    /// Python's float `repr`: `1.0`, `0.5`, `1e-07`.
    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        if value == value.rounded(), abs(value) < 1e16 { return String(Int(value)) + ".0" }
        return "\(value)"
    }

    /// Python's `repr` of a string: single quotes unless the text holds one and no double quote.
    static func pythonQuoted(_ text: String) -> String {
        let quote: Character = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case quote: out += "\\" + String(quote)
            default: out.append(character)
            }
        }
        return out + String(quote)
    }

    /// Python's `json.dumps(value, ensure_ascii=False, indent=indent)` (what transformers' `tojson` is).
    public func json(indent: Int? = nil) throws -> String { try json(indent: indent, level: 0, sortKeys: false) }

    func json(indent: Int?, level: Int, sortKeys: Bool) throws -> String {
        let (open, separator, close): (String, String, String)
        if let indent {
            let inner = "\n" + String(repeating: " ", count: indent * (level + 1))
            (open, separator, close) = (inner, "," + inner, "\n" + String(repeating: " ", count: indent * level))
        } else {
            (open, separator, close) = ("", ", ", "")
        }
        switch self {
        case .undefined(let name): throw TemplateError("'\(name)' is undefined (it cannot be written as JSON)")
        case .none: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .integer(let value): return String(value)
        case .number(let value):
            if value.isNaN { return "NaN" }
            if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
            return Self.pythonFloat(value)
        case .string(let value): return Self.jsonQuoted(value)
        case .list(let items):
            if items.isEmpty { return "[]" }
            return "[" + open + (try items.map { try $0.json(indent: indent, level: level + 1, sortKeys: sortKeys) }).joined(separator: separator) + close + "]"
        case .dictionary(let items):
            if items.isEmpty { return "{}" }
            let pairs = sortKeys ? items.elements.sorted { $0.key < $1.key } : Array(items.elements)
            return "{" + open + (try pairs.map { Self.jsonQuoted($0.key) + ": " + (try $0.value.json(indent: indent, level: level + 1, sortKeys: sortKeys)) })
                .joined(separator: separator) + close + "}"
        case .namespace, .callable: throw TemplateError("a \(kind) cannot be written as JSON")
        }
    }

    static func jsonQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Python's `==` (1 == 1.0; lists and dictionaries by their items).
    public static func equal(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.list(x), .list(y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case let (.dictionary(x), .dictionary(y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { equal(value, $0) } ?? false }
        case let (.namespace(x), .namespace(y)): return x === y
        default:
            if let x = a.numeric, let y = b.numeric { return x == y }
            return false
        }
    }

    /// The value as a number where Python would compute with it (booleans are 0 and 1).
    var numeric: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .number(let value): return value
        case .bool(let value): return value ? 1 : 0
        default: return nil
        }
    }

    /// Python's `<` for numbers, strings and lists; nil where Python raises.
    static func less(_ a: TemplateValue, _ b: TemplateValue) -> Bool? {
        switch (a, b) {
        case let (.string(x), .string(y)): return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
        case let (.list(x), .list(y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return less(p, q) }
            return x.count < y.count
        default:
            guard let x = a.numeric, let y = b.numeric else { return nil }
            return x < y
        }
    }
}

extension TemplateValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

/// `namespace(…)`'s attributes, shared by every reference to it.
public final class TemplateNamespace: @unchecked Sendable {
    var attributes: OrderedDictionary<String, TemplateValue>
    init(_ attributes: OrderedDictionary<String, TemplateValue>) { self.attributes = attributes }
}

/// A function a template can call: positional arguments and keyword arguments in order.
public struct TemplateCallable: Sendable {
    let name: String
    let call: @Sendable ([TemplateValue], [(String, TemplateValue)]) throws -> TemplateValue
}

/// Why a template could not be parsed or rendered; `raise_exception(…)` in a template gives its own message.
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    /// Whether the template itself raised it (`raise_exception`): the request was refused by the template's rules.
    public let raisedByTemplate: Bool
    init(_ message: String, raisedByTemplate: Bool = false) {
        self.message = message
        self.raisedByTemplate = raisedByTemplate
    }
    public var description: String { message }
}
