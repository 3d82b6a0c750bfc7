import FoundationEssentials
import OrderedCollections
import RealModule

/// What templates find built in: operators with Python's semantics, attribute and item access as Jinja does it,
/// the filters, tests, string and dictionary methods and globals that chat templates use.
enum TemplateBuiltins {
    // MARK: Access

    /// The items a loop (or `list`, `join`, …) goes over: a list's items, a string's characters, a dictionary's keys.
    static func items(of value: TemplateValue, for use: String) throws -> [TemplateValue] {
        switch value {
        case .list(let items): return items
        case .string(let text): return text.map { .string(String($0)) }
        case .dictionary(let items): return items.keys.map { .string($0) }
        case .undefined, .none: return value.isUndefined ? [] : try fail("\(use) cannot go over none")
        default: return try fail("\(use) cannot go over a \(value.kind)")
        }
    }

    /// `value.name`: a method where the value has one by that name, else the key or attribute (Jinja's getattr).
    static func attribute(_ name: String, of value: TemplateValue) throws -> TemplateValue {
        if case .undefined(let undefined) = value { return try fail("'\(undefined)' is undefined (reading .\(name))") }
        if let method = method(name, of: value) { return method }
        switch value {
        case .dictionary(let items): return items[name] ?? .undefined(name: name)
        case .namespace(let namespace): return namespace.attributes[name] ?? .undefined(name: name)
        default: return .undefined(name: name)
        }
    }

    /// `value[key]`: a dictionary's key, a list's or string's index (negative from the end); a method as a fallback.
    static func item(_ key: TemplateValue, of value: TemplateValue) throws -> TemplateValue {
        if case .undefined(let undefined) = value { return try fail("'\(undefined)' is undefined (reading [\(key.represented)])") }
        switch (value, key) {
        case let (.dictionary(items), .string(name)): return items[name] ?? method(name, of: value) ?? .undefined(name: name)
        case let (.namespace(namespace), .string(name)): return namespace.attributes[name] ?? .undefined(name: name)
        case let (.list(items), .integer(index)):
            let at = index < 0 ? items.count + index : index
            return items.indices.contains(at) ? items[at] : .undefined(name: "item \(index)")
        case let (.string(text), .integer(index)):
            let characters = Array(text), at = index < 0 ? characters.count + index : index
            return characters.indices.contains(at) ? .string(String(characters[at])) : .undefined(name: "item \(index)")
        case let (_, .string(name)): return method(name, of: value) ?? .undefined(name: name)
        default: return .undefined(name: "item \(key.represented)")
        }
    }

    /// Python's `value[start:stop:step]` for lists and strings.
    static func slice(_ value: TemplateValue, start: Int?, stop: Int?, step: Int?) throws -> TemplateValue {
        let step = step ?? 1
        guard step != 0 else { return try fail("a slice step cannot be zero") }
        func indices(_ count: Int) -> [Int] {
            func clamp(_ bound: Int?, _ defaultValue: Int, low: Int, high: Int) -> Int {
                guard var bound else { return defaultValue }
                if bound < 0 { bound += count }
                return min(max(bound, low), high)
            }
            if step > 0 {
                let (from, to) = (clamp(start, 0, low: 0, high: count), clamp(stop, count, low: 0, high: count))
                return Array(stride(from: from, to: to, by: step))
            }
            let (from, to) = (clamp(start, count - 1, low: -1, high: count - 1), clamp(stop, -1, low: -1, high: count - 1))
            return from > to ? Array(stride(from: from, to: to, by: step)) : []
        }
        switch value {
        case .list(let items): return .list(indices(items.count).map { items[$0] })
        case .string(let text):
            let characters = Array(text)
            return .string(String(indices(characters.count).map { characters[$0] }))
        default: return try fail("cannot slice a \(value.kind)")
        }
    }

    // MARK: Operators

    static func binary(_ symbol: String, _ a: TemplateValue, _ b: TemplateValue) throws -> TemplateValue {
        switch symbol {
        case "==": return .bool(TemplateValue.equal(a, b))
        case "!=": return .bool(!TemplateValue.equal(a, b))
        case "<", ">", "<=", ">=":
            try requireDefined(a, b, symbol)
            let (x, y) = symbol == "<" || symbol == ">=" ? (a, b) : (b, a)
            guard let less = TemplateValue.less(x, y) else { return try fail("cannot compare a \(a.kind) and a \(b.kind) with \(symbol)") }
            return .bool(symbol == "<" || symbol == ">" ? less : !less)
        case "in", "not in":
            let found: Bool
            switch b {
            case .string(let text):
                guard case .string(let part) = a else { return try fail("'in <string>' needs a string on the left, not a \(a.kind)") }
                found = text.contains(part)
            case .list(let items): found = items.contains { TemplateValue.equal($0, a) }
            case .dictionary(let items):
                guard case .string(let key) = a else { found = false; break }
                found = items[key] != nil
            case .undefined: found = false
            default: return try fail("'in' cannot look inside a \(b.kind)")
            }
            return .bool(found == (symbol == "in"))
        case "~": return .string(a.printed + b.printed)
        default: return try arithmetic(symbol, a, b)
        }
    }

    private static func arithmetic(_ symbol: String, _ a: TemplateValue, _ b: TemplateValue) throws -> TemplateValue {
        try requireDefined(a, b, symbol)
        switch (symbol, a, b) {
        case let ("+", .string(x), .string(y)): return .string(x + y)
        case let ("+", .list(x), .list(y)): return .list(x + y)
        case let ("*", .string(x), .integer(n)), let ("*", .integer(n), .string(x)):
            guard x.utf8.count.multipliedReportingOverflow(by: max(n, 0)).partialValue <= 1 << 24, n < 1 << 24 else { return try fail("a repeated string over 16 MB") }
            return .string(String(repeating: x, count: max(n, 0)))
        case let ("*", .list(x), .integer(n)):
            guard x.count.multipliedReportingOverflow(by: max(n, 0)).partialValue <= 1 << 20, n < 1 << 20 else { return try fail("a repeated list over a million items") }
            return .list(Array(repeating: x, count: max(n, 0)).flatMap { $0 })
        default: break
        }
        let bothIntegers: (Int, Int)? = {
            switch (a, b) {
            case let (.integer(x), .integer(y)): return (x, y)
            case let (.integer(x), .bool(y)): return (x, y ? 1 : 0)
            case let (.bool(x), .integer(y)): return (x ? 1 : 0, y)
            default: return nil
            }
        }()
        guard let x = a.numeric, let y = b.numeric else { return try fail("cannot apply \(symbol) to a \(a.kind) and a \(b.kind)") }
        if (symbol == "/" || symbol == "//" || symbol == "%"), y == 0 { return try fail("division by zero") }
        if let (i, j) = bothIntegers {
            switch symbol {
            case "+": return .integer(i &+ j)
            case "-": return .integer(i &- j)
            case "*": return .integer(i &* j)
            case "//": return .integer(Int((Double(i) / Double(j)).rounded(.down)))
            case "%": return .integer(((i % j) + j) % j)
            case "**" where j >= 0: return .integer(Int(Double.pow(Double(i), Double(j))))
            default: break
            }
        }
        switch symbol {
        case "+": return .number(x + y)
        case "-": return .number(x - y)
        case "*": return .number(x * y)
        case "/": return .number(x / y)
        case "//": return .number((x / y).rounded(.down))
        case "%": return .number(x - y * (x / y).rounded(.down))
        case "**": return .number(Double.pow(x, y))
        default: return try fail("unknown operator \(symbol)")
        }
    }

    private static func requireDefined(_ a: TemplateValue, _ b: TemplateValue, _ symbol: String) throws {
        for value in [a, b] {
            if case .undefined(let name) = value { _ = try fail("'\(name)' is undefined (used with \(symbol))") as TemplateValue }
        }
    }

    static func fail<T>(_ message: String) throws -> T { throw TemplateError(message) }

    // MARK: Globals

    static func global(_ name: String) -> TemplateValue? {
        switch name {
        case "raise_exception":
            return .callable(TemplateCallable(name: name) { arguments, _ in
                throw TemplateError(arguments.first?.printed ?? "the chat template raised an error", raisedByTemplate: true)
            })
        case "range":
            return .callable(TemplateCallable(name: name) { arguments, _ in
                let bounds = try arguments.map { value -> Int in
                    guard case .integer(let n) = value else { return try fail("range() takes integers, not a \(value.kind)") }
                    return n
                }
                let (start, stop, step) = bounds.count == 1 ? (0, bounds[0], 1) : (bounds[0], bounds[1], bounds.count > 2 ? bounds[2] : 1)
                guard step != 0, (bounds.count >= 1 && bounds.count <= 3) else { return try fail("range() takes 1 to 3 arguments and a non-zero step") }
                guard abs((stop - start) / step) <= 100_000 else { return try fail("range() of more than 100000 items") }
                return .list(stride(from: start, to: stop, by: step).map { .integer($0) })
            })
        case "namespace", "dict":
            return .callable(TemplateCallable(name: name) { arguments, keywords in
                var attributes = OrderedDictionary<String, TemplateValue>()
                if case .dictionary(let initial)? = arguments.first { attributes = initial }
                for (key, value) in keywords { attributes[key] = value }
                return name == "dict" ? try .container { .dictionary(attributes) } : .namespace(TemplateNamespace(attributes))
            })
        case "strftime_now":  // transformers' global: today's date in the template's format
            return .callable(TemplateCallable(name: name) { arguments, _ in
                guard case .string(let format)? = arguments.first else { return try fail("strftime_now() takes a format string") }
                return .string(strftime(format, Date()))
            })
        default: return nil
        }
    }

    /// The strftime directives templates use for dates (`%d %B %Y`, `%Y-%m-%d`, `%b`, `%A`, …), in UTC.
    static func strftime(_ format: String, _ date: Date) -> String {
        let days = Int((date.timeIntervalSince1970 / 86_400).rounded(.down))
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468, era = (z >= 0 ? z : z - 146_096) / 146_097, dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100), mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9, year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let weekdays = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"]
        let weekday = weekdays[((days % 7) + 7) % 7]
        func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = "", directive = false
        for character in format {
            guard directive else {
                if character == "%" { directive = true } else { out.append(character) }
                continue
            }
            directive = false
            switch character {
            case "Y": out += String(year)
            case "m": out += twoDigits(month)
            case "d": out += twoDigits(day)
            case "B": out += months[month - 1]
            case "b": out += String(months[month - 1].prefix(3))
            case "A": out += weekday
            case "a": out += String(weekday.prefix(3))
            case "%": out += "%"
            default: out += "%" + String(character)
            }
        }
        return out
    }

    // MARK: Methods

    /// `value.name` as a bound method, for the string and dictionary methods templates call.
    static func method(_ name: String, of value: TemplateValue) -> TemplateValue? {
        switch value {
        case .string(let text): return stringMethod(name, text)
        case .dictionary(let items):
            switch name {
            case "items": return bound(name) { _, _ in try .container { .list(items.map { .list([.string($0.key), $0.value]) }) } }
            case "keys": return bound(name) { _, _ in .list(items.keys.map { .string($0) }) }
            case "values": return bound(name) { _, _ in .list(Array(items.values)) }
            case "get":
                return bound(name) { arguments, _ in
                    guard case .string(let key)? = arguments.first else { return arguments.count > 1 ? arguments[1] : .none }
                    return items[key] ?? (arguments.count > 1 ? arguments[1] : .none)
                }
            default: return nil
            }
        default: return nil
        }
    }

    private static func bound(_ name: String, _ call: @escaping @Sendable ([TemplateValue], [(String, TemplateValue)]) throws -> TemplateValue) -> TemplateValue {
        .callable(TemplateCallable(name: name, call: call))
    }

    private static func stringArgument(_ arguments: [TemplateValue], _ index: Int) -> String? {
        guard index < arguments.count, case .string(let text) = arguments[index] else { return nil }
        return text
    }

    private static func stringMethod(_ name: String, _ text: String) -> TemplateValue? {
        switch name {
        case "strip", "lstrip", "rstrip":
            return bound(name) { arguments, _ in
                let characters = stringArgument(arguments, 0).map(Set.init)
                func strips(_ c: Character) -> Bool { characters?.contains(c) ?? c.isWhitespace }
                var result = Substring(text)
                if name != "rstrip" { result = result.drop(while: strips) }
                if name != "lstrip" { while let last = result.last, strips(last) { result = result.dropLast() } }
                return .string(String(result))
            }
        case "startswith", "endswith":
            return bound(name) { arguments, _ in
                let candidates: [String]
                switch arguments.first {
                case .string(let prefix)?: candidates = [prefix]
                case .list(let items)?: candidates = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
                default: return try fail("\(name)() takes a string or a list of strings")
                }
                return .bool(candidates.contains { name == "startswith" ? text.hasPrefix($0) : text.hasSuffix($0) })
            }
        case "upper": return bound(name) { _, _ in .string(text.uppercased()) }
        case "lower": return bound(name) { _, _ in .string(text.lowercased()) }
        case "title": return bound(name) { _, _ in .string(titled(text)) }
        case "capitalize": return bound(name) { _, _ in .string(text.prefix(1).uppercased() + text.dropFirst().lowercased()) }
        case "split", "rsplit":
            return bound(name) { arguments, keywords in
                let separator = stringArgument(arguments, 0) ?? keywords.first { $0.0 == "sep" }.flatMap { if case .string(let s) = $0.1 { s } else { nil } }
                var limit = -1
                if arguments.count > 1, case .integer(let n) = arguments[1] { limit = n }
                return .list(split(text, separator: separator, limit: limit, fromEnd: name == "rsplit").map { .string($0) })
            }
        case "splitlines": return bound(name) { _, _ in .list(text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { .string(String($0)) }.dropLastIfEmpty(text)) }
        case "replace":
            return bound(name) { arguments, _ in
                guard let old = stringArgument(arguments, 0), let new = stringArgument(arguments, 1) else { return try fail("replace() takes two strings") }
                var count = -1
                if arguments.count > 2, case .integer(let n) = arguments[2] { count = n }
                return .string(replace(text, old, new, count: count))
            }
        case "find":
            return bound(name) { arguments, _ in
                guard let part = stringArgument(arguments, 0) else { return try fail("find() takes a string") }
                guard let range = text.firstRange(of: part) else { return .integer(-1) }
                return .integer(text.distance(from: text.startIndex, to: range.lowerBound))
            }
        case "count":
            return bound(name) { arguments, _ in
                guard let part = stringArgument(arguments, 0), !part.isEmpty else { return try fail("count() takes a non-empty string") }
                return .integer(pieces(text, part).count - 1)
            }
        case "join":
            return bound(name) { arguments, _ in
                .string(try items(of: arguments.first ?? .list([]), for: "join()").map(\.printed).joined(separator: text))
            }
        case "isdigit": return bound(name) { _, _ in .bool(!text.isEmpty && text.allSatisfy(\.isNumber)) }
        case "isspace": return bound(name) { _, _ in .bool(!text.isEmpty && text.allSatisfy(\.isWhitespace)) }
        default: return nil
        }
    }

    static func titled(_ text: String) -> String {
        var out = "", previousIsLetter = false
        for character in text {
            out += previousIsLetter ? character.lowercased() : character.uppercased()
            previousIsLetter = character.isLetter
        }
        return out
    }

    /// Python's `str.split` / `rsplit`: on runs of whitespace without a separator (no empty parts), else exactly.
    static func split(_ text: String, separator: String?, limit: Int, fromEnd: Bool) -> [String] {
        guard let separator, !separator.isEmpty else {
            var words = text.split(whereSeparator: \.isWhitespace).map(String.init)
            if limit >= 0, words.count > limit + 1 {
                // The unsplit rest, its words joined by single spaces (Python keeps its original whitespace).
                let keep = fromEnd ? words.count - limit : limit
                let rest = fromEnd ? words[..<keep].joined(separator: " ") : words[keep...].joined(separator: " ")
                words = fromEnd ? [rest] + words[keep...] : words[..<keep] + [rest]
            }
            return words
        }
        var parts = pieces(text, separator)
        if limit >= 0, parts.count > limit + 1 {
            parts = fromEnd
                ? [parts[..<(parts.count - limit)].joined(separator: separator)] + parts[(parts.count - limit)...]
                : parts[..<limit] + [parts[limit...].joined(separator: separator)]
        }
        return parts
    }

    /// `text` cut at every `separator` (Python's `split(separator)`; empty parts kept).
    static func pieces(_ text: String, _ separator: String) -> [String] {
        text.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
    }

    static func trimmed(_ text: String) -> String {
        String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        guard count >= 0 else { return old.isEmpty ? text : text.replacing(old, with: new) }
        var parts = pieces(text, old)
        guard parts.count > count + 1 else { return parts.joined(separator: new) }
        let head = parts[...count].joined(separator: new)
        parts = Array(parts[(count + 1)...])
        return head + old + parts.joined(separator: old)
    }
}

private extension Array where Element == TemplateValue {
    /// `splitlines()` drops the empty part after a final newline.
    func dropLastIfEmpty(_ text: String) -> [TemplateValue] {
        guard let last = text.last, last.isNewline, case .string("")? = self.last else { return self }
        return Array(dropLast())
    }
}
