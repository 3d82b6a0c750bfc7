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
