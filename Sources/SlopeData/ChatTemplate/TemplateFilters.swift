import FoundationEssentials
import OrderedCollections
import RealModule

/// Jinja's filters (`value | name(arguments)`) and tests (`value is name`) that chat templates use.
extension TemplateBuiltins {
    static func filter(_ name: String, _ value: TemplateValue, _ arguments: [TemplateValue], _ keywords: [(String, TemplateValue)]) throws -> TemplateValue {
        func argument(_ index: Int, _ keyword: String) -> TemplateValue? {
            index < arguments.count ? arguments[index] : keywords.first { $0.0 == keyword }?.1
        }
        func integer(_ index: Int, _ keyword: String, _ defaultValue: Int) -> Int {
            if case .integer(let n)? = argument(index, keyword) { return n }
            return defaultValue
        }
        func defined(_ use: String) throws {
            if case .undefined(let undefined) = value { _ = try fail("'\(undefined)' is undefined (given to \(use))") as TemplateValue }
        }
        switch name {
        case "default", "d":
            let fallback = argument(0, "default_value") ?? .string("")
            let onFalse = argument(1, "boolean")?.isTrue ?? false
            return value.isUndefined || (onFalse && !value.isTrue) ? fallback : value
        case "trim":
            try defined(name)
            guard case .callable(let strip)? = method("strip", of: .string(value.printed)) else { return value }
            return try strip.call(argument(0, "chars").map { [$0] } ?? [], [])
        case "length", "count":
            switch value {
            case .string(let text): return .integer(text.count)
            case .list(let items): return .integer(items.count)
            case .dictionary(let items): return .integer(items.count)
            case .undefined: return .integer(0)
            default: return try fail("\(name) of a \(value.kind)")
            }
        case "tojson":
            let indent: Int? = if case .integer(let n)? = argument(0, "indent") { n } else { nil }
            return .string(try value.json(indent: indent, level: 0, sortKeys: argument(3, "sort_keys")?.isTrue ?? false))
        case "string": return .string(value.printed)
        case "upper": return .string(value.printed.uppercased())
        case "lower": return .string(value.printed.lowercased())
        case "title": return .string(titled(value.printed))
        case "capitalize": let text = value.printed; return .string(text.prefix(1).uppercased() + text.dropFirst().lowercased())
        case "safe", "e", "escape", "forceescape":
            // No autoescaping in chat templates (transformers renders plain text): `safe` is a no-op, `escape` escapes.
            guard name != "safe" else { return value }
            let entities: [Character: String] = ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&#34;", "'": "&#39;"]
            return .string(value.printed.map { entities[$0] ?? String($0) }.joined())
        case "first", "last":
            let all = try items(of: value, for: name)
            return (name == "first" ? all.first : all.last) ?? .undefined(name: "\(name) of an empty sequence")
        case "list": return .list(try items(of: value, for: name))
        case "reverse":
            if case .string(let text) = value { return .string(String(text.reversed())) }
            return .list(try items(of: value, for: name).reversed())
        case "join":
            var parts = try items(of: value, for: name)
            if case .string(let attribute)? = argument(1, "attribute") { parts = try parts.map { try self.attribute(attribute, of: $0) } }
            return .string(parts.map(\.printed).joined(separator: argument(0, "d")?.printed ?? ""))
        case "replace":
            guard case .string(let old)? = argument(0, "old"), case .string(let new)? = argument(1, "new") else { return try fail("replace takes two strings") }
            return .string(replace(value.printed, old, new, count: integer(2, "count", -1)))
        case "int":
            switch value {
            case .integer: return value
            case .number(let x): return .integer(Int(x.rounded(.towardZero)))
            case .bool(let x): return .integer(x ? 1 : 0)
            case .string(let text): return .integer(Int(trimmed(text)) ?? integer(0, "default", 0))
            default: return .integer(integer(0, "default", 0))
            }
        case "float":
            if let x = value.numeric { return .number(x) }
            if case .string(let text) = value, let x = Double(trimmed(text)) { return .number(x) }
            return .number(0)
        case "abs":
            switch value {
            case .integer(let x): return .integer(abs(x))
            case .number(let x): return .number(abs(x))
            default: return try fail("abs of a \(value.kind)")
            }
        case "round":
            guard let x = value.numeric else { return try fail("round of a \(value.kind)") }
            let scale = Double.pow(10, Double(integer(0, "precision", 0)))
            let method = argument(1, "method")?.printed ?? "common"
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrAwayFromZero
            return .number((x * scale).rounded(rule) / scale)
        case "items":
            guard case .dictionary(let entries) = value else { return value.isUndefined ? .list([]) : try fail("items of a \(value.kind)") }
            return try .container { .list(entries.map { .list([.string($0.key), $0.value]) }) }
        case "unique":
            var seen: [TemplateValue] = []
            for item in try items(of: value, for: name) where !seen.contains(where: { TemplateValue.equal($0, item) }) { seen.append(item) }
            return .list(seen)
        case "sort":
            let attribute = argument(2, "attribute")?.printed
            let keyed = try items(of: value, for: name).map { item in (item, try attribute.map { try self.attribute($0, of: item) } ?? item) }
            var sorted = try keyed.sorted { a, b in
                guard let less = TemplateValue.less(a.1, b.1) else { return try fail("sort cannot order a \(a.1.kind) and a \(b.1.kind)") }
                return less
            }.map(\.0)
            if argument(0, "reverse")?.isTrue == true { sorted.reverse() }
            return .list(sorted)
        case "sum":
            var total: TemplateValue = argument(1, "start") ?? .integer(0)
            for item in try items(of: value, for: name) {
                let term = try argument(0, "attribute").map { try self.attribute($0.printed, of: item) } ?? item
                total = try binary("+", total, term)
            }
            return total
        case "min", "max":
            let all = try items(of: value, for: name)
            guard var best = all.first else { return .undefined(name: "\(name) of an empty sequence") }
            for item in all.dropFirst() {
                guard let less = TemplateValue.less(item, best) else { return try fail("\(name) cannot order a \(item.kind) and a \(best.kind)") }
                if less == (name == "min") { best = item }
            }
            return best
        case "selectattr", "rejectattr", "select", "reject":
            let byAttribute = name.hasSuffix("attr")
            var offset = 0
            var attribute: String? = nil
            if byAttribute {
                guard case .string(let a)? = arguments.first else { return try fail("\(name) takes an attribute name") }
                attribute = a
                offset = 1
            }
            let test = arguments.count > offset ? arguments[offset].printed : nil
            let testArguments = Array(arguments.dropFirst(offset + 1))
            let keep = !name.hasPrefix("reject")
            return .list(try items(of: value, for: name).filter { item in
                let subject = try attribute.map { try self.item(.string($0), of: item) } ?? item
                let passes = try test.map { try self.test($0, subject, testArguments) } ?? subject.isTrue
                return passes == keep
            })
        case "map":
            let all = try items(of: value, for: name)
            if let attribute = keywords.first(where: { $0.0 == "attribute" })?.1.printed {
                let fallback = keywords.first { $0.0 == "default" }?.1
                return .list(try all.map { item in
                    let found = try self.item(.string(attribute), of: item)
                    return found.isUndefined ? fallback ?? found : found
                })
            }
            guard case .string(let filterName)? = arguments.first else { return try fail("map takes a filter name or attribute=…") }
            return .list(try all.map { try filter(filterName, $0, Array(arguments.dropFirst()), []) })
        case "indent":
            let width = integer(0, "width", 4)
            let first = argument(1, "first")?.isTrue ?? false, blank = argument(2, "blank")?.isTrue ?? false
            let pad = String(repeating: " ", count: width)
            let lines = value.printed.split(separator: "\n", omittingEmptySubsequences: false)
            return .string(lines.enumerated().map { index, line in
                (index == 0 && !first) || (line.isEmpty && !blank) ? String(line) : pad + line
            }.joined(separator: "\n"))
        case "wordcount": return .integer(value.printed.split(whereSeparator: \.isWhitespace).count)
        default:
            return try fail("the filter '\(name)' is not supported in chat templates here")
        }
    }

    static func test(_ name: String, _ value: TemplateValue, _ arguments: [TemplateValue]) throws -> Bool {
        let other = arguments.first ?? .undefined(name: "the test's argument")
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .integer = value { return true } else { return false }
        case "float": if case .number = value { return true } else { return false }
        case "number": switch value { case .integer, .number, .bool: return true; default: return false }
        case "string": if case .string = value { return true } else { return false }
        case "mapping": switch value { case .dictionary, .namespace: return true; default: return false }
        case "sequence", "iterable": switch value { case .list, .string, .dictionary: return true; default: return false }
        case "callable": if case .callable = value { return true } else { return false }
        case "even", "odd":
            guard case .integer(let n) = value else { return try fail("\(name) needs an integer, not a \(value.kind)") }
            return (n % 2 == 0) == (name == "even")
        case "divisibleby":
            guard case .integer(let n) = value, case .integer(let d) = other, d != 0 else { return try fail("divisibleby needs integers") }
            return n % d == 0
        case "eq", "equalto", "==": return TemplateValue.equal(value, other)
        case "ne", "!=": return !TemplateValue.equal(value, other)
        case "lt", "<", "gt", ">", "le", "<=", "ge", ">=":
            let symbol = ["lt": "<", "gt": ">", "le": "<=", "ge": ">="][name] ?? name
            return try binary(symbol, value, other).isTrue
        case "in": return try binary("in", value, other).isTrue
        case "sameas": return TemplateValue.equal(value, other)
        case "lower": return value.printed == value.printed.lowercased()
        case "upper": return value.printed == value.printed.uppercased()
        default: return try fail("the test '\(name)' is not supported in chat templates here")
        }
    }
}
