import FoundationEssentials
import SlopeData

/// The tokenizer files of an export, so that transformers' `AutoTokenizer.from_pretrained(folder)` produces the
/// ids the model was trained on, and `pipeline("text-generation")` stops at the real end-of-text id.
public enum HuggingFaceTokenizerFiles {
    /// What the model was trained with.
    public enum Source: Equatable, Sendable {
        /// slope's byte tokenizer: written as an equivalent tokenizer.json (byte-level BPE without merges: one token
        /// per UTF-8 byte, id = byte; end of text = 256).
        case bytes
        /// A tokenizer.json, copied.
        case tokenizerJSON(path: String)
        /// GPT-2's vocab.json and merges.txt, copied.
        case vocabularyAndMerges(vocabulary: String, merges: String)
    }

    /// The end-of-text token's text (GPT-2's, and what slope's byte tokenizer writes for id 256).
    public static let endOfTextText = "<|endoftext|>"

    /// Writes the tokenizer files, tokenizer_config.json, special_tokens_map.json and generation_config.json into
    /// `folder`; returns the names written.
    @discardableResult
    public static func write(_ source: Source, endOfText: Int32?, contextLength: Int, to folder: String) throws -> [String] {
        var written: [String] = []
        func put(_ name: String, _ data: Data) throws {
            try AtomicFile.write(data, to: folder + "/" + name)
            written.append(name)
        }
        func copy(_ path: String, as name: String) throws {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw TensorError.invalidArgument(operation: "export", reason: "cannot read the tokenizer file \(path): \(error)")
            }
            try put(name, data)
        }
        let tokenizerClass: String
        switch source {
        case .bytes:
            try put("tokenizer.json", try byteTokenizerJSON())
            tokenizerClass = "PreTrainedTokenizerFast"
        case .tokenizerJSON(let path):
            try copy(path, as: "tokenizer.json")
            tokenizerClass = "PreTrainedTokenizerFast"
        case let .vocabularyAndMerges(vocabulary, merges):
            try copy(vocabulary, as: "vocab.json")
            try copy(merges, as: "merges.txt")
            tokenizerClass = "GPT2Tokenizer"
        }
        let special: [String: String] = endOfText == nil
            ? [:] : ["bos_token": endOfTextText, "eos_token": endOfTextText, "pad_token": endOfTextText]
        struct TokenizerConfig: Encodable {
            let tokenizer_class: String
            let model_max_length: Int
            let clean_up_tokenization_spaces: Bool
            let add_prefix_space: Bool
            let bos_token: String?, eos_token: String?, pad_token: String?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try put("tokenizer_config.json", try encoder.encode(TokenizerConfig(
            tokenizer_class: tokenizerClass, model_max_length: contextLength, clean_up_tokenization_spaces: false, add_prefix_space: false,
            bos_token: special["bos_token"], eos_token: special["eos_token"], pad_token: special["pad_token"])))
        try put("special_tokens_map.json", try encoder.encode(special))
        let ids = endOfText.map { ["bos_token_id": Int($0), "eos_token_id": Int($0), "pad_token_id": Int($0)] } ?? [:]
        try put("generation_config.json", try encoder.encode(ids))
        return written
    }

    /// slope's byte tokenizer in the `tokenizers` library's format (its empty fields as explicit nulls, as the
    /// library writes them).
    static func byteTokenizerJSON() throws -> Data {
        let vocabulary = Dictionary(uniqueKeysWithValues: BPETokenizer.byteToCharacter.enumerated().map { ($1, $0) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let vocabularyJSON = String(decoding: try encoder.encode(vocabulary), as: UTF8.self)
        let byteLevel = #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}"#
        let json = """
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [{"id": \(ByteTokenizer.endOfText), "content": "\(endOfTextText)", "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true}],
             "normalizer": null, "pre_tokenizer": \(byteLevel), "post_processor": null, "decoder": \(byteLevel),
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                       "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": \(vocabularyJSON), "merges": []}}

            """
        return Data(json.utf8)
    }
}
