import OrderedCollections

/// Template values from JSON text (a request's messages and tools), objects keeping their keys in the text's order
/// as Python's `json.loads` does: `tojson` then writes them back as transformers would. (Foundation's decoders do not
/// keep key order, so this small reader does.)
extension TemplateValue {
    public init(json bytes: some Collection<UInt8>) throws {
        var reader = JSONReader(bytes: Array(bytes))
        reader.skipSpace()
        self = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.atEnd else { throw reader.failure("text after the JSON value") }
    }
}

private struct JSONReader {
    let bytes: [UInt8]
    var position = 0
    static let maximumDepth = TemplateValue.maximumDepth

    var atEnd: Bool { position >= bytes.count }

    func failure(_ message: String) -> TemplateError { TemplateError("invalid JSON at byte \(position): \(message)") }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    mutating func expect(_ literal: String) throws {
        for byte in literal.utf8 {
            guard position < bytes.count, bytes[position] == byte else { throw failure("expected '\(literal)'") }
            position += 1
        }
    }

    mutating func value(depth: Int) throws -> TemplateValue {
        guard depth < Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth)") }
        guard position < bytes.count else { throw failure("unexpected end") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            position += 1
            var items = OrderedDictionary<String, TemplateValue>()
            skipSpace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .dictionary(items) }
            while true {
                skipSpace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let key = try string()
                skipSpace()
                try expect(":")
                skipSpace()
                items[key] = try value(depth: depth + 1)
                skipSpace()
                guard position < bytes.count else { throw failure("unexpected end in an object") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "}") { return .dictionary(items) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw failure("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            position += 1
            var items: [TemplateValue] = []
            skipSpace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .list(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard position < bytes.count else { throw failure("unexpected end in an array") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "]") { return .list(items) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw failure("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .none
        default: return try number()
        }
    }

    mutating func number() throws -> TemplateValue {
        let start = position
        var isInteger = true
        while position < bytes.count, let c = Optional(bytes[position]),
              (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { isInteger = false }
            position += 1
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let integer = Int(text) { return .integer(integer) }
        guard !text.isEmpty, let number = Double(text) else { throw failure("expected a value") }
        guard number.isFinite else { throw failure("\(text) is out of range") }
        return .number(number)
    }

    mutating func string() throws -> String {
        position += 1  // the opening quote
        var scalars = String.UnicodeScalarView()
        var run = position  // bytes copied as they are, up to an escape or the end
        func flush(_ end: Int) { scalars.append(contentsOf: String(decoding: bytes[run..<end], as: UTF8.self).unicodeScalars) }
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                flush(position)
                position += 1
                return String(scalars)
            }
            guard c == UInt8(ascii: "\\") else {
                guard c >= 0x20 else { throw failure("a control character inside a string") }
                position += 1
                continue
            }
            flush(position)
            guard position + 1 < bytes.count else { break }
            let escape = bytes[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): scalars.append(Unicode.Scalar(escape))
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                    position += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw failure("an unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw failure("an unpaired surrogate") }
                scalars.append(scalar)
            default: throw failure("an unknown escape")
            }
            run = position
        }
        throw failure("a string is not closed")
    }

    mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16) else {
            throw failure("expected four hex digits")
        }
        position += 4
        return code
    }
}
