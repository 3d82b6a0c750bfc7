/// One piece of a template's source: text as it is printed, or a `{{ … }}` / `{% … %}` tag's tokens.
enum TemplateSegment: Equatable {
    case text(String)
    case output([TemplateToken], line: Int)
    case statement([TemplateToken], line: Int)
}

struct TemplateToken: Equatable {
    enum Kind: Equatable {
        case name(String)
        case string(String)
        case integer(Int)
        case number(Double)
        case symbol(String)
    }
    let kind: Kind
    let line: Int

    func isSymbol(_ symbol: String) -> Bool { kind == .symbol(symbol) }
    func isName(_ name: String) -> Bool { kind == .name(name) }
}

/// Splits a template into segments as Jinja does with transformers' settings (`trim_blocks`, `lstrip_blocks`, the
/// source's one trailing newline dropped): a `{% … %}` or `{# … #}` alone on its line takes that line's indentation
/// and the newline after it with it; `-` beside a tag's brace strips all whitespace on that side, `+` keeps it.
enum TemplateLexer {
    private enum Tag { case output, statement, comment }

    static func segments(_ source: String) throws -> [TemplateSegment] {
        var text = Array(source.unicodeScalars)
        if text.last == "\n" { text.removeLast() }  // keep_trailing_newline = False
        var segments: [TemplateSegment] = []
        var pending = ""  // text since the last tag
        var trimNextNewline = false, stripNextWhitespace = false
        var i = 0, line = 1

        func flushText(stripTrailing: Bool, lstrip: Bool) {
            if stripTrailing {
                while let last = pending.unicodeScalars.last, last.properties.isWhitespace { pending.unicodeScalars.removeLast() }
            } else if lstrip {
                // Only spaces and tabs between the tag and the start of its line in the source.
                var k = i - 1
                while k >= 0, text[k] == " " || text[k] == "\t" { k -= 1 }
                if k < 0 || text[k] == "\n" {
                    while let last = pending.unicodeScalars.last, last == " " || last == "\t" { pending.unicodeScalars.removeLast() }
                }
            }
            if !pending.isEmpty { segments.append(.text(pending)) }
            pending = ""
        }

        while i < text.count {
            let c = text[i]
            if c == "{", i + 1 < text.count, let tag = Self.tag(opening: text[i + 1]) {
                let tagLine = line
                var j = i + 2
                var marker: Unicode.Scalar? = nil
                if j < text.count, text[j] == "-" || text[j] == "+" { marker = text[j]; j += 1 }
                flushText(stripTrailing: marker == "-", lstrip: tag != .output && marker != "+")
                let closer: Unicode.Scalar = tag == .output ? "}" : tag == .statement ? "%" : "#"
                var tokens: [TemplateToken] = []
                var endMarker: Unicode.Scalar? = nil
                if tag == .comment {
                    while j + 1 < text.count, !(text[j] == "#" && text[j + 1] == "}") {
                        if text[j] == "\n" { line += 1 }
                        j += 1
                    }
                    guard j + 1 < text.count else { throw TemplateError("line \(tagLine): a comment is not closed with #}") }
                    if text[j - 1] == "-" || text[j - 1] == "+" { endMarker = text[j - 1] }
                    j += 2
                } else {
                    (tokens, endMarker, j) = try expressionTokens(text, from: j, closer: closer, line: &line, tagLine: tagLine)
                }
                i = j
                if tag == .statement, tokens.first?.isName("raw") == true {
                    // Everything up to {% endraw %} is text.
                    let rest = String(String.UnicodeScalarView(text[i...]))
                    guard let end = rest.firstMatch(of: /\{%([-+]?)\s*endraw\s*([-+]?)%\}/) else {
                        throw TemplateError("line \(tagLine): {% raw %} is not closed")
                    }
                    pending += String(rest[..<end.range.lowerBound])
                    flushText(stripTrailing: end.output.1 == "-", lstrip: end.output.1 != "+")
                    line += rest[..<end.range.upperBound].filter { $0 == "\n" }.count
                    i += rest[..<end.range.upperBound].unicodeScalars.count
                    stripNextWhitespace = end.output.2 == "-"
                    trimNextNewline = end.output.2 != "+"
                    continue
                }
                switch tag {
                case .output: segments.append(.output(tokens, line: tagLine))
                case .statement: segments.append(.statement(tokens, line: tagLine))
                case .comment: break
                }
                stripNextWhitespace = endMarker == "-"
                trimNextNewline = tag != .output && endMarker != "+"
                continue
            }
            if stripNextWhitespace {
                if c.properties.isWhitespace {
                    if c == "\n" { line += 1 }
                    i += 1
                    continue
                }
                stripNextWhitespace = false
            }
            if trimNextNewline {
                trimNextNewline = false
                if c == "\n" { line += 1; i += 1; continue }
                if c == "\r", i + 1 < text.count, text[i + 1] == "\n" { line += 1; i += 2; continue }
            }
            if c == "\n" { line += 1 }
            pending.unicodeScalars.append(c)
            i += 1
        }
        if !pending.isEmpty { segments.append(.text(pending)) }
        return segments
    }

    private static func tag(opening scalar: Unicode.Scalar) -> Tag? {
        switch scalar {
        case "{": return .output
        case "%": return .statement
        case "#": return .comment
        default: return nil
        }
    }

    private static let symbols = ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}",
                                  ",", ".", ":", "|", "="]

    /// The tokens of a tag up to its closing `closer}` (not inside a string or braces); returns the marker before the
    /// closer (`-`, `+`) and the index after it.
    private static func expressionTokens(
        _ text: [Unicode.Scalar], from start: Int, closer: Unicode.Scalar, line: inout Int, tagLine: Int
    ) throws -> ([TemplateToken], Unicode.Scalar?, Int) {
        var tokens: [TemplateToken] = []
        var i = start, braces = 0
        func at(_ k: Int) -> Unicode.Scalar? { k < text.count ? text[k] : nil }
        while i < text.count {
            let c = text[i]
            if c == "\n" { line += 1; i += 1; continue }
            if c.properties.isWhitespace { i += 1; continue }
            if braces == 0, c == closer, at(i + 1) == "}" { return (tokens, nil, i + 2) }
            if braces == 0, c == "-" || c == "+", at(i + 1) == closer, at(i + 2) == "}" { return (tokens, c, i + 3) }
            if c == "'" || c == "\"" {
                var value = String.UnicodeScalarView()
                var j = i + 1
                while j < text.count, text[j] != c {
                    if text[j] == "\\", j + 1 < text.count {
                        j += 1
                        switch text[j] {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "\\", "'", "\"": value.append(text[j])
                        default: value.append("\\"); value.append(text[j])
                        }
                    } else {
                        if text[j] == "\n" { line += 1 }
                        value.append(text[j])
                    }
                    j += 1
                }
                guard j < text.count else { throw TemplateError("line \(tagLine): a string is not closed") }
                tokens.append(TemplateToken(kind: .string(String(value)), line: line))
                i = j + 1
                continue
            }
            if c.properties.numericType != nil, ("0"..."9").contains(c) {
                var j = i
                while let d = at(j), ("0"..."9").contains(d) || d == "_" { j += 1 }
                var isFloat = false
                if at(j) == ".", let d = at(j + 1), ("0"..."9").contains(d) {
                    isFloat = true
                    j += 1
                    while let d = at(j), ("0"..."9").contains(d) { j += 1 }
                }
                if let e = at(j), e == "e" || e == "E" {
                    var k = j + 1
                    if let sign = at(k), sign == "+" || sign == "-" { k += 1 }
                    if let d = at(k), ("0"..."9").contains(d) {
                        isFloat = true
                        j = k
                        while let d = at(j), ("0"..."9").contains(d) { j += 1 }
                    }
                }
                let literal = String(String.UnicodeScalarView(text[i..<j].filter { $0 != "_" }))
                if isFloat, let value = Double(literal) {
                    tokens.append(TemplateToken(kind: .number(value), line: line))
                } else if let value = Int(literal) {
                    tokens.append(TemplateToken(kind: .integer(value), line: line))
                } else {
                    throw TemplateError("line \(line): '\(literal)' is not a number")
                }
                i = j
                continue
            }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while let d = at(j), d == "_" || d.properties.isAlphabetic || ("0"..."9").contains(d) { j += 1 }
                tokens.append(TemplateToken(kind: .name(String(String.UnicodeScalarView(text[i..<j]))), line: line))
                i = j
                continue
            }
            guard let symbol = symbols.first(where: { symbol in
                symbol.unicodeScalars.enumerated().allSatisfy { at(i + $0.offset) == $0.element }
            }) else {
                throw TemplateError("line \(line): unexpected character '\(c)' in a tag")
            }
            if symbol == "{" { braces += 1 }
            if symbol == "}" { braces -= 1 }
            tokens.append(TemplateToken(kind: .symbol(symbol), line: line))
            i += symbol.unicodeScalars.count
        }
        throw TemplateError("line \(tagLine): a tag is not closed with \(closer)}")
    }
}
