/// A parsed template: statements over expressions, the subset of Jinja that chat templates use (if/elif/else,
/// for with loop.*, set and namespace attributes, macros, break/continue, filters, tests, Python-like methods).
indirect enum TemplateNode: Sendable {
    case text(String)
    case output(TemplateExpression, line: Int)
    case conditional([(condition: TemplateExpression, body: [TemplateNode])], otherwise: [TemplateNode], line: Int)
    case loop(targets: [String], iterable: TemplateExpression, filter: TemplateExpression?, body: [TemplateNode], otherwise: [TemplateNode], line: Int)
    /// `{% set a = … %}`, `{% set a, b = … %}`, `{% set ns.attribute = … %}`.
    case assignment(targets: [String], attribute: String?, value: TemplateExpression, line: Int)
    /// `{% set name %}…{% endset %}`: the body's text.
    case capture(name: String, body: [TemplateNode])
    case macro(name: String, parameters: [(name: String, defaultValue: TemplateExpression?)], body: [TemplateNode])
    case breakLoop, continueLoop
}

indirect enum TemplateExpression: Sendable {
    case literal(TemplateValue)
    case name(String)
    case list([TemplateExpression])
    case dictionary([(key: TemplateExpression, value: TemplateExpression)])
    case attribute(TemplateExpression, String)
    case item(TemplateExpression, TemplateExpression)
    case slice(TemplateExpression, start: TemplateExpression?, stop: TemplateExpression?, step: TemplateExpression?)
    case call(TemplateExpression, TemplateArguments)
    case filter(TemplateExpression, name: String, TemplateArguments)
    case test(TemplateExpression, name: String, TemplateArguments, negated: Bool)
    case unary(String, TemplateExpression)
    case binary(String, TemplateExpression, TemplateExpression)
    case conditional(then: TemplateExpression, condition: TemplateExpression, otherwise: TemplateExpression?)
}

struct TemplateArguments: Sendable {
    var positional: [TemplateExpression] = []
    var keywords: [(name: String, value: TemplateExpression)] = []
}

/// Parses the lexer's segments into nodes.
struct TemplateParser {
    private let segments: [TemplateSegment]
    private var position = 0
    /// Blocks open around the one being read; nesting deeper than `maximumDepth` is refused (the parser and the
    /// renderer recurse per level).
    private var depth = 0
    static let maximumDepth = 64

    static func parse(_ source: String) throws -> [TemplateNode] {
        var parser = TemplateParser(segments: try TemplateLexer.segments(source))
        let (nodes, end) = try parser.block(until: [])
        if let end { throw TemplateError("line \(end.line): unexpected {% \(end.keyword) %}") }
        return nodes
    }

    private init(segments: [TemplateSegment]) { self.segments = segments }

    /// Nodes up to a statement whose keyword is in `ends` (returned with its remaining tokens), or the end.
    private mutating func block(until ends: Set<String>) throws -> ([TemplateNode], (keyword: String, tokens: [TemplateToken], line: Int)?) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw TemplateError("blocks are nested deeper than \(Self.maximumDepth)") }
        var nodes: [TemplateNode] = []
        while position < segments.count {
            let segment = segments[position]
            position += 1
            switch segment {
            case .text(let text): nodes.append(.text(text))
            case .output(let tokens, let line):
                var expression = ExpressionParser(tokens: tokens, line: line)
                nodes.append(.output(try expression.parseWhole(), line: line))
            case .statement(let tokens, let line):
                guard case .name(let keyword)? = tokens.first?.kind else { throw TemplateError("line \(line): a {% %} tag needs a keyword") }
                let rest = Array(tokens.dropFirst())
                if ends.contains(keyword) { return (nodes, (keyword, rest, line)) }
                nodes.append(try statement(keyword, rest, line: line))
            }
        }
        if !ends.isEmpty {
            throw TemplateError("the template ends inside a block: expected {% \(ends.sorted().joined(separator: " %} or {% ")) %}")
        }
        return (nodes, nil)
    }

    private mutating func statement(_ keyword: String, _ tokens: [TemplateToken], line: Int) throws -> TemplateNode {
        var expression = ExpressionParser(tokens: tokens, line: line)
        switch keyword {
        case "if":
            var branches: [(TemplateExpression, [TemplateNode])] = []
            var condition = try expression.parseWhole()
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                switch end!.keyword {
                case "elif":
                    var next = ExpressionParser(tokens: end!.tokens, line: end!.line)
                    condition = try next.parseWhole()
                case "else":
                    let (otherwise, _) = try block(until: ["endif"])
                    return .conditional(branches, otherwise: otherwise, line: line)
                default:
                    return .conditional(branches, otherwise: [], line: line)
                }
            }
        case "for":
            var targets = [try expression.name()]
            while expression.skip(symbol: ",") { targets.append(try expression.name()) }
            try expression.expect(name: "in")
            let iterable = try expression.parseNoConditional()
            let filter = expression.skip(name: "if") ? try expression.parseNoConditional() : nil
            _ = expression.skip(name: "recursive")
            try expression.expectEnd()
            let (body, end) = try block(until: ["else", "endfor"])
            var otherwise: [TemplateNode] = []
            if end!.keyword == "else" { otherwise = try block(until: ["endfor"]).0 }
            return .loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line)
        case "set":
            var targets = [try expression.name()]
            var attribute: String? = nil
            if expression.skip(symbol: ".") { attribute = try expression.name() }
            while attribute == nil, expression.skip(symbol: ",") { targets.append(try expression.name()) }
            if expression.atEnd, targets.count == 1, attribute == nil {
                let (body, _) = try block(until: ["endset"])
                return .capture(name: targets[0], body: body)
            }
            try expression.expect(symbol: "=")
            return .assignment(targets: targets, attribute: attribute, value: try expression.parseWhole(), line: line)
        case "macro":
            let name = try expression.name()
            var parameters: [(String, TemplateExpression?)] = []
            try expression.expect(symbol: "(")
            while !expression.skip(symbol: ")") {
                if !parameters.isEmpty { try expression.expect(symbol: ",") }
                if expression.skip(symbol: ")") { break }
                let parameter = try expression.name()
                parameters.append((parameter, expression.skip(symbol: "=") ? try expression.parseExpression() : nil))
            }
            try expression.expectEnd()
            let (body, _) = try block(until: ["endmacro"])
            return .macro(name: name, parameters: parameters, body: body)
        case "break", "continue":
            try expression.expectEnd()
            return keyword == "break" ? .breakLoop : .continueLoop
        case "generation":  // transformers' marker of the assistant's part: rendered as its body
            let (body, _) = try block(until: ["endgeneration"])
            return .conditional([(.literal(.bool(true)), body)], otherwise: [], line: line)
        case _ where keyword.hasPrefix("end") || keyword == "elif" || keyword == "else":
            throw TemplateError("line \(line): unexpected {% \(keyword) %} (no open block it closes)")
        default:
            throw TemplateError("line \(line): {% \(keyword) %} is not supported in chat templates here")
        }
    }
}

/// Jinja's expression grammar, lowest precedence first: `a if c else b`, or, and, not, comparisons and `in`,
/// `+ -`, `~`, `* / // %`, `**`, unary `- +`, then a primary with attributes, items, calls, filters and tests.
struct ExpressionParser {
    private let tokens: [TemplateToken]
    private let line: Int
    private var position = 0
    /// Sub-expressions open around the one being read (parentheses, lists, unary operators, …).
    private var depth = 0

    init(tokens: [TemplateToken], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var atEnd: Bool { position >= tokens.count }
    private var current: TemplateToken? { position < tokens.count ? tokens[position] : nil }

    private func failure(_ message: String) -> TemplateError {
        TemplateError("line \(current?.line ?? line): \(message)")
    }

    mutating func skip(symbol: String) -> Bool {
        guard current?.isSymbol(symbol) == true else { return false }
        position += 1
        return true
    }

    mutating func skip(name: String) -> Bool {
        guard current?.isName(name) == true else { return false }
        position += 1
        return true
    }

    mutating func expect(symbol: String) throws {
        guard skip(symbol: symbol) else { throw failure("expected '\(symbol)'\(found)") }
    }

    mutating func expect(name: String) throws {
        guard skip(name: name) else { throw failure("expected '\(name)'\(found)") }
    }

    mutating func expectEnd() throws {
        guard atEnd else { throw failure("unexpected\(found)") }
    }

    private var found: String {
        guard let current else { return " at the end of the tag" }
        switch current.kind {
        case .name(let name): return ", found '\(name)'"
        case .symbol(let symbol): return ", found '\(symbol)'"
        case .string(let text): return ", found the string '\(text)'"
        case .integer(let value): return ", found \(value)"
        case .number(let value): return ", found \(value)"
        }
    }

    mutating func name() throws -> String {
        guard case .name(let name)? = current?.kind else { throw failure("expected a name\(found)") }
        position += 1
        return name
    }

    mutating func parseWhole() throws -> TemplateExpression {
        let expression = try parseExpression()
        try expectEnd()
        return expression
    }

    mutating func parseExpression() throws -> TemplateExpression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= TemplateParser.maximumDepth else { throw failure("an expression nested deeper than \(TemplateParser.maximumDepth)") }
        var expression = try parseOr()
        while skip(name: "if") {
            let condition = try parseOr()
            let otherwise = skip(name: "else") ? try parseExpression() : nil
            expression = .conditional(then: expression, condition: condition, otherwise: otherwise)
        }
        return expression
    }

    /// An expression without a trailing `if` (a for loop's iterable, before its own `if` filter).
    mutating func parseNoConditional() throws -> TemplateExpression { try parseOr() }

    private mutating func parseOr() throws -> TemplateExpression {
        var left = try parseAnd()
        while skip(name: "or") { left = .binary("or", left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws -> TemplateExpression {
        var left = try parseNot()
        while skip(name: "and") { left = .binary("and", left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws -> TemplateExpression {
        if skip(name: "not") {
            depth += 1
            defer { depth -= 1 }
            guard depth <= TemplateParser.maximumDepth else { throw failure("an expression nested deeper than \(TemplateParser.maximumDepth)") }
            return .unary("not", try parseNot())
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> TemplateExpression {
        var left = try parseSum()
        while true {
            if let symbol = ["==", "!=", "<", ">", "<=", ">="].first(where: { current?.isSymbol($0) == true }) {
                position += 1
                left = .binary(symbol, left, try parseSum())
            } else if skip(name: "in") {
                left = .binary("in", left, try parseSum())
            } else if current?.isName("not") == true, position + 1 < tokens.count, tokens[position + 1].isName("in") {
                position += 2
                left = .binary("not in", left, try parseSum())
            } else {
                return left
            }
        }
    }

    private mutating func parseSum() throws -> TemplateExpression {
        var left = try parseConcatenation()
        while let symbol = ["+", "-"].first(where: { current?.isSymbol($0) == true }) {
            position += 1
            left = .binary(symbol, left, try parseConcatenation())
        }
        return left
    }

    private mutating func parseConcatenation() throws -> TemplateExpression {
        var left = try parseProduct()
        while skip(symbol: "~") { left = .binary("~", left, try parseProduct()) }
        return left
    }

    private mutating func parseProduct() throws -> TemplateExpression {
        var left = try parsePower()
        while let symbol = ["*", "/", "//", "%"].first(where: { current?.isSymbol($0) == true }) {
            position += 1
            left = .binary(symbol, left, try parsePower())
        }
        return left
    }

    private mutating func parsePower() throws -> TemplateExpression {
        var left = try parseUnary()
        while skip(symbol: "**") { left = .binary("**", left, try parseUnary()) }
        return left
    }

    private mutating func parseUnary(filters: Bool = true) throws -> TemplateExpression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= TemplateParser.maximumDepth else { throw failure("an expression nested deeper than \(TemplateParser.maximumDepth)") }
        var expression: TemplateExpression
        if skip(symbol: "-") {
            expression = .unary("-", try parseUnary(filters: false))
        } else if skip(symbol: "+") {
            expression = .unary("+", try parseUnary(filters: false))
        } else {
            expression = try parsePrimary()
        }
        expression = try parsePostfix(expression)
        return filters ? try parseFiltersAndTests(expression) : expression
    }

    private mutating func parsePrimary() throws -> TemplateExpression {
        guard let token = current else { throw failure("expected a value at the end of the tag") }
        position += 1
        switch token.kind {
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name)
            }
        case .string(var text):
            while case .string(let more)? = current?.kind {  // adjacent strings join, as in Python
                text += more
                position += 1
            }
            return .literal(.string(text))
        case .integer(let value): return .literal(.integer(value))
        case .number(let value): return .literal(.number(value))
        case .symbol("("):
            if skip(symbol: ")") { return .list([]) }
            let first = try parseExpression()
            guard skip(symbol: ",") else {
                try expect(symbol: ")")
                return first
            }
            var items = [first]  // a tuple: a list here
            while !skip(symbol: ")") {
                items.append(try parseExpression())
                if !skip(symbol: ",") { try expect(symbol: ")"); break }
            }
            return .list(items)
        case .symbol("["):
            var items: [TemplateExpression] = []
            while !skip(symbol: "]") {
                items.append(try parseExpression())
                if !skip(symbol: ",") { try expect(symbol: "]"); break }
            }
            return .list(items)
        case .symbol("{"):
            var pairs: [(TemplateExpression, TemplateExpression)] = []
            while !skip(symbol: "}") {
                let key = try parseExpression()
                try expect(symbol: ":")
                pairs.append((key, try parseExpression()))
                if !skip(symbol: ",") { try expect(symbol: "}"); break }
            }
            return .dictionary(pairs)
        default:
            position -= 1
            throw failure("expected a value\(found)")
        }
    }

    private mutating func parsePostfix(_ base: TemplateExpression) throws -> TemplateExpression {
        var expression = base
        while true {
            if skip(symbol: ".") {
                if case .integer(let index)? = current?.kind {  // `a.0`, Jinja's item by number
                    position += 1
                    expression = .item(expression, .literal(.integer(index)))
                } else {
                    expression = .attribute(expression, try name())
                }
            } else if skip(symbol: "[") {
                expression = try parseSubscript(expression)
            } else if skip(symbol: "(") {
                expression = .call(expression, try parseArguments())
            } else {
                return expression
            }
        }
    }

    private mutating func parseSubscript(_ base: TemplateExpression) throws -> TemplateExpression {
        func bound(_ parser: inout ExpressionParser) throws -> TemplateExpression? {
            parser.current?.isSymbol(":") == true || parser.current?.isSymbol("]") == true ? nil : try parser.parseExpression()
        }
        let start = try bound(&self)
        guard skip(symbol: ":") else {
            guard let start else { throw failure("expected an index") }
            try expect(symbol: "]")
            return .item(base, start)
        }
        let stop = try bound(&self)
        let step = skip(symbol: ":") ? try bound(&self) : nil
        try expect(symbol: "]")
        return .slice(base, start: start, stop: stop, step: step)
    }

    /// After `(`: positional and `name=value` arguments up to `)`.
    private mutating func parseArguments() throws -> TemplateArguments {
        var arguments = TemplateArguments()
        while !skip(symbol: ")") {
            if case .name(let keyword)? = current?.kind, position + 1 < tokens.count, tokens[position + 1].isSymbol("=") {
                position += 2
                arguments.keywords.append((keyword, try parseExpression()))
            } else {
                arguments.positional.append(try parseExpression())
            }
            if !skip(symbol: ",") { try expect(symbol: ")"); break }
        }
        return arguments
    }

    private mutating func parseFiltersAndTests(_ base: TemplateExpression) throws -> TemplateExpression {
        var expression = base
        while true {
            if skip(symbol: "|") {
                let filter = try name()
                let arguments = skip(symbol: "(") ? try parseArguments() : TemplateArguments()
                expression = try parsePostfix(.filter(expression, name: filter, arguments))
            } else if skip(name: "is") {
                let negated = skip(name: "not")
                let test = try name()
                var arguments = TemplateArguments()
                if skip(symbol: "(") {
                    arguments = try parseArguments()
                } else if let token = current, Self.startsTestArgument(token) {
                    arguments.positional = [try parsePostfix(parsePrimary())]
                }
                expression = .test(expression, name: test, arguments, negated: negated)
            } else {
                return expression
            }
        }
    }

    /// Whether a token after `is name` is that test's one argument (`x is divisibleby 3`) rather than what follows.
    private static func startsTestArgument(_ token: TemplateToken) -> Bool {
        switch token.kind {
        case .string, .integer, .number: return true
        case .name(let name): return !["else", "or", "and", "if", "in", "is", "not"].contains(name)
        case .symbol(let symbol): return symbol == "[" || symbol == "{"
        }
    }
}
