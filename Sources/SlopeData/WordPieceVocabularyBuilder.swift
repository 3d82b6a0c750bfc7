import FoundationEssentials

/// A WordPiece tokenizer.json made from training text, for pretraining without a vocabulary of one's own: BERT's
/// special tokens, every character seen (alone and as a `##` continuation, so no word is unknown), then the most
/// frequent words of the text after BERT's normalisation (lower-cased, accents stripped) and pre-tokenization,
/// until the vocabulary holds `size` entries. Word-level with a character fallback — not Google's WordPiece
/// training, which learns sub-word pieces — so it suits small or synthetic corpora; a real corpus should bring
/// its model's vocabulary (bert-base-uncased's tokenizer.json). The file is the layout the `tokenizers` library
/// writes, so transformers reads it too.
public enum WordPieceVocabularyBuilder {
    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// tokenizer.json bytes for `text`, at most `size` entries (at least the special tokens and the characters).
    public static func tokenizerJSON(text: String, size: Int) throws -> Data {
        // The normaliser and pre-tokenizer of the file being made, from a tokenizer of the special tokens alone.
        let splitter = try WordPieceTokenizer(tokenizerJSONData: document(vocabulary: specialTokens))
        var counts: [String: Int] = [:]
        var characters = Set<String>()
        for word in splitter.words(splitter.normalized(text)) {
            counts[String(word), default: 0] += 1
            for character in word.unicodeScalars { characters.insert(String(character)) }
        }
        var vocabulary = specialTokens
        for character in characters.sorted() { vocabulary += [character, "##" + character] }
        var seen = Set(vocabulary)
        let words = counts.filter { !seen.contains($0.key) }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        for (word, _) in words where vocabulary.count < size && seen.insert(word).inserted { vocabulary.append(word) }
        return try document(vocabulary: vocabulary)
    }

    /// The tokenizer.json of `vocabulary` (ids in order; the special tokens first).
    static func document(vocabulary: [String]) throws -> Data {
        let ids = Dictionary(uniqueKeysWithValues: vocabulary.enumerated().map { ($1, Int32($0)) })
        let file = File(
            added_tokens: specialTokens.map { File.Added(id: ids[$0]!, content: $0) },
            post_processor: .init(sep: .init(token: "[SEP]", id: ids["[SEP]"]!), cls: .init(token: "[CLS]", id: ids["[CLS]"]!)),
            model: .init(vocab: ids))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(file)
    }

    /// tokenizer.json's fields as the `tokenizers` library writes them for BERT.
    struct File: Encodable {
        struct Added: Encodable {
            let id: Int32, content: String
            let single_word = false, lstrip = false, rstrip = false, normalized = false, special = true
        }
        struct Normalizer: Encodable {
            let type = "BertNormalizer", clean_text = true, handle_chinese_chars = true, lowercase = true
            /// null: strip accents when lower-casing, as BERT's uncased models do.
            func encode(to encoder: any Encoder) throws {
                enum Key: String, CodingKey { case type, clean_text, handle_chinese_chars, strip_accents, lowercase }
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(type, forKey: .type)
                try container.encode(clean_text, forKey: .clean_text)
                try container.encode(handle_chinese_chars, forKey: .handle_chinese_chars)
                try container.encodeNil(forKey: .strip_accents)
                try container.encode(lowercase, forKey: .lowercase)
            }
        }
        struct Typed: Encodable { let type: String }
        struct Special: Encodable {
            let token: String, id: Int32
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                try container.encode(token)
                try container.encode(id)
            }
        }
        struct PostProcessor: Encodable { let type = "BertProcessing"; let sep: Special, cls: Special }
        struct Decoder: Encodable { let type = "WordPiece", prefix = "##", cleanup = true }
        struct Model: Encodable {
            let type = "WordPiece", unk_token = "[UNK]", continuing_subword_prefix = "##", max_input_chars_per_word = 100
            let vocab: [String: Int32]
        }
        let version = "1.0"
        let added_tokens: [Added]
        let normalizer = Normalizer()
        let pre_tokenizer = Typed(type: "BertPreTokenizer")
        let post_processor: PostProcessor
        let decoder = Decoder()
        let model: Model
    }
}
