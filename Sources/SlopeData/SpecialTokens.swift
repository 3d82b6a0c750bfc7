import FoundationEssentials

/// Added and special tokens as the `tokenizers` library matches them: in the raw text, before normalisation,
/// longest first; the text between them is encoded on its own.
struct SpecialTokens: Sendable {
    /// Longest first, so `<|endoftext|>` wins over a shorter token it starts with.
    let tokens: [(bytes: [UInt8], id: Int32)]

    init(_ tokens: [String: Int32]) {
        self.tokens = tokens.map { (Array($0.key.utf8), $0.value) }.filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// The id of the token spelled `name`, if there is one.
    func id(of name: String) -> Int32? { tokens.first { $0.bytes == Array(name.utf8) }?.id }

    /// `text`'s special tokens as their ids and the stretches between them through `encode` (with whether the
    /// stretch begins the text).
    func encode(_ text: String, stretches encode: (String, Bool) throws -> [Int32]) rethrows -> [Int32] {
        guard !tokens.isEmpty else { return try encode(text, true) }
        let bytes = Array(text.utf8)
        let firstBytes = Set(tokens.map { $0.bytes[0] })
        var ids: [Int32] = []
        var start = 0, i = 0
        while i < bytes.count {
            if firstBytes.contains(bytes[i]), let special = tokens.first(where: { token in
                i + token.bytes.count <= bytes.count && bytes[i..<(i + token.bytes.count)].elementsEqual(token.bytes)
            }) {
                if start < i { ids += try encode(String(decoding: bytes[start..<i], as: UTF8.self), start == 0) }
                ids.append(special.id)
                i += special.bytes.count
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { ids += try encode(String(decoding: bytes[start...], as: UTF8.self), start == 0) }
        return ids
    }
}

/// What kind of model a tokenizer.json holds, to pick the tokenizer that reads it.
public enum TokenizerJSON {
    /// `model.type` ("BPE", "WordPiece", …), nil when the file does not say.
    public static func modelType(atPath path: String) throws -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { throw BPETokenizer.Failure.unreadable(path: path) }
        struct File: Decodable {
            struct Model: Decodable { let type: String? }
            let model: Model?
        }
        return (try? JSONDecoder().decode(File.self, from: data))?.model?.type
    }
}

/// tokenizer.json's `TemplateProcessing` post-processor, as far as one text goes (its `single` template): the
/// special tokens before the text (`$A`) and after it.
struct TemplateProcessing: Decodable {
    /// A piece of `single`: a special token, or the text itself.
    enum Piece: Decodable {
        case special(String), sequence
        enum Keys: String, CodingKey { case SpecialToken, Sequence }
        struct Named: Decodable { let id: String }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            if let named = try container.decodeIfPresent(Named.self, forKey: .SpecialToken) { self = .special(named.id) } else { self = .sequence }
        }
    }
    struct Special: Decodable { let ids: [Int32] }

    /// The ids put before and after every text; nil names a special token the template uses but does not define.
    static func ids(single: [Piece]?, specialTokens: [String: Special]?) -> Result<(prefix: [Int32], suffix: [Int32]), UnknownToken> {
        var (prefix, suffix): ([Int32], [Int32]) = ([], [])
        var seenText = false
        for piece in single ?? [] {
            switch piece {
            case .sequence: seenText = true
            case .special(let name):
                guard let ids = specialTokens?[name]?.ids else { return .failure(UnknownToken(name: name)) }
                if seenText { suffix += ids } else { prefix += ids }
            }
        }
        return .success((prefix, suffix))
    }

    struct UnknownToken: Error { let name: String }
}
