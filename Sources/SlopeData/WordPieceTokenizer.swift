import FoundationEssentials

/// A WordPiece tokenizer.json (BERT and its kin) as the `tokenizers` library runs it: special tokens matched in the
/// raw text; `BertNormalizer` (control characters dropped and whitespace made spaces, CJK ideographs set apart,
/// accents stripped, lowercasing) or the normalizers ``TextNormalization`` runs; `BertPreTokenizer` (split at
/// whitespace, punctuation isolated) or the other splitting pre-tokenizers ``PreTokenization`` runs; each word greedily cut into the longest vocabulary
/// pieces, continuations with `##`, a word that cannot be cut (or is longer than `max_input_chars_per_word`)
/// becoming the unknown token; `[CLS] … [SEP]` from the post-processor; and the `WordPiece` decoder.
public struct WordPieceTokenizer: Sendable {
    let vocabulary: [String: Int32]
    let decoder: [Int32: String]
    let specialTokens: SpecialTokens
    let unknown: Int32
    let continuingPrefix: String
    let maximumWordCharacters: Int
    let normalizer: Normalizer
    let preTokenization: PreTokenization
    let prefix: [Int32], suffix: [Int32]
    let cleansUpDecoding: Bool

    /// tokenizer.json's normalizer: BERT's own, or the generic steps.
    enum Normalizer: Sendable {
        case bert(cleansText: Bool, separatesChinese: Bool, stripsAccents: Bool, lowercases: Bool)
        case steps(TextNormalization)
    }

    public var vocabularySize: Int { (decoder.keys.max().map { Int($0) + 1 }) ?? 0 }

    /// The id of a vocabulary entry or special token (`[MASK]`, `[CLS]` …), if there is one.
    public func id(of token: String) -> Int32? { specialTokens.id(of: token) ?? vocabulary[token] }

    /// BERT's separator, `[SEP]` (what ends a document), or `</s>`.
    public var endOfText: Int32? { specialTokens.id(of: "[SEP]") ?? specialTokens.id(of: "</s>") }

    public init(tokenizerJSON path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw BPETokenizer.Failure.unreadable(path: path) }
        try self.init(tokenizerJSONData: data, path: path)
    }

    public init(tokenizerJSONData data: Data, path: String = "tokenizer.json") throws {
        struct Component: Decodable {
            let type: String?
            let processors: [Component]?
            let prefix: String?
            let cleanup: Bool?
            let cls: Special?
            let sep: Special?
            let single: [TemplateProcessing.Piece]?
            let special_tokens: [String: TemplateProcessing.Special]?
            /// BertProcessing's `["[CLS]", 101]`.
            struct Special: Decodable {
                let id: Int32
                init(from decoder: any Decoder) throws {
                    var container = try decoder.unkeyedContainer()
                    _ = try container.decode(String.self)
                    id = try container.decode(Int32.self)
                }
            }
            var stages: [Component] { type == "Sequence" ? processors ?? [] : [self] }
            var name: String { type ?? "?" }
        }
        struct File: Decodable {
            struct Model: Decodable {
                let type: String?
                let vocab: [String: Int32]
                let unk_token: String?
                let continuing_subword_prefix: String?
                let max_input_chars_per_word: Int?
            }
            struct Added: Decodable { let id: Int32; let content: String }
            let model: Model
            let normalizer: TextNormalization.Component?
            let pre_tokenizer: PreTokenization.Component?
            let post_processor: Component?
            let decoder: Component?
            let added_tokens: [Added]?
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw BPETokenizer.Failure.malformed(path: path, reason: "expected a WordPiece model with a vocab (\(error))")
        }
        func refuse(_ what: String) -> BPETokenizer.Failure {
            .malformed(path: path, reason: "\(what) is not supported yet with a WordPiece model (slope reads BERT's layout)")
        }
        guard file.model.type == "WordPiece" else { throw BPETokenizer.Failure.malformed(path: path, reason: "model type is \(file.model.type ?? "?"), not WordPiece") }
        try BPETokenizer.checkIDs(file.model.vocab, path: path)
        let unknownName = file.model.unk_token ?? "[UNK]"
        guard let unknown = file.model.vocab[unknownName] else {
            throw BPETokenizer.Failure.malformed(path: path, reason: "the unknown token \(unknownName) is not in the vocabulary")
        }

        let normalizer: Normalizer
        if let bert = file.normalizer, bert.type == "BertNormalizer" {
            let lowercases = bert.lowercase ?? true
            normalizer = .bert(cleansText: bert.clean_text ?? true, separatesChinese: bert.handle_chinese_chars ?? true,
                               stripsAccents: bert.strip_accents ?? lowercases, lowercases: lowercases)
        } else {
            do throws(ComponentRefusal) { normalizer = .steps(try TextNormalization(file.normalizer)) } catch { throw refuse(error.what) }
        }
        guard let preTokenizer = file.pre_tokenizer else { throw refuse("a model without a pre-tokenizer") }
        do throws(ComponentRefusal) { preTokenization = PreTokenization(steps: try PreTokenization.splittingSteps(preTokenizer.stages)) } catch {
            throw refuse("\(error.what) (in the pre-tokenizer \(preTokenizer.name))")
        }
        var (prefix, suffix): ([Int32], [Int32]) = ([], [])
        for post in file.post_processor?.stages ?? [] {
            switch post.type {
            case "BertProcessing":
                guard let cls = post.cls, let sep = post.sep else { throw refuse("a BertProcessing without cls and sep") }
                (prefix, suffix) = ([cls.id], [sep.id])
            case "TemplateProcessing":
                let around = try TemplateProcessing.ids(single: post.single, specialTokens: post.special_tokens)
                    .mapError { refuse("the post-processor's unknown token \($0.name)") }.get()
                (prefix, suffix) = (prefix + around.prefix, suffix + around.suffix)
            default: throw refuse("the post-processor \(post.name)")
            }
        }
        if let decoder = file.decoder, decoder.type != "WordPiece" { throw refuse("the decoder \(decoder.name)") }
        let added = Dictionary((file.added_tokens ?? []).map { ($0.content, $0.id) }, uniquingKeysWith: { first, _ in first })
        try BPETokenizer.checkIDs(added.merging(file.model.vocab) { first, _ in first }, path: path)

        vocabulary = file.model.vocab
        var decoder = Dictionary(file.model.vocab.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
        for (text, id) in added where decoder[id] == nil { decoder[id] = text }
        self.decoder = decoder
        specialTokens = SpecialTokens(added)
        self.unknown = unknown
        continuingPrefix = file.decoder?.prefix ?? file.model.continuing_subword_prefix ?? "##"
        maximumWordCharacters = file.model.max_input_chars_per_word ?? 100
        self.normalizer = normalizer
        self.prefix = prefix
        self.suffix = suffix
        cleansUpDecoding = file.decoder?.cleanup ?? true
    }

    // MARK: Encoding

    public func encode(_ text: String) throws -> [Int32] {
        prefix + (try encodeWithoutAddedTokens(text)) + suffix
    }

    /// The ids without the post-processor's `[CLS]` … `[SEP]` (a sentence pair is put together by the caller).
    public func encodeWithoutAddedTokens(_ text: String) throws -> [Int32] {
        specialTokens.encode(text) { stretch, _ in encodeOrdinary(stretch) }
    }

    func encodeOrdinary(_ text: String) -> [Int32] {
        words(normalized(text)).flatMap(pieces)
    }

    func normalized(_ text: String) -> String {
        switch normalizer {
        case .steps(let steps): return steps.apply(text)
        case let .bert(cleansText, separatesChinese, stripsAccents, lowercases):
            var scalars = String.UnicodeScalarView()
            for scalar in text.unicodeScalars {
                if cleansText {
                    if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
                    if Self.isBertWhitespace(scalar) {
                        scalars.append(" ")
                        continue
                    }
                }
                if separatesChinese, Self.isChineseIdeograph(scalar) {
                    scalars.append(contentsOf: [" ", scalar, " "])
                } else {
                    scalars.append(scalar)
                }
            }
            var steps: [TextNormalization.Step] = []
            if stripsAccents { steps += [.nfd, .removeMarks(nonspacingOnly: true)] }
            if lowercases { steps.append(.lowercase) }
            return TextNormalization(steps: steps).apply(String(scalars))
        }
    }

    /// The words the pre-tokenizer cuts `text` into.
    func words(_ text: String) -> [Substring] {
        preTokenization.words(text[...])
    }

    /// The longest vocabulary piece at each point, continuations with the prefix; the unknown token for a word
    /// that cannot be cut so, or that is too long.
    func pieces(_ word: Substring) -> [Int32] {
        let scalars = Array(word.unicodeScalars)
        guard scalars.count <= maximumWordCharacters else { return [unknown] }
        var ids: [Int32] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32?
            while start < end {
                var candidate = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { candidate = continuingPrefix + candidate }
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unknown] }
            ids.append(found)
            start = end
        }
        return ids
    }

    // MARK: Decoding

    /// The `WordPiece` decoder: pieces joined by spaces, continuations glued on, and the cleanup of spaces before
    /// punctuation and in English contractions.
    public func decode(_ ids: [Int32]) -> String {
        var text = ""
        for (index, id) in ids.enumerated() {
            guard var token = decoder[id] else { continue }
            if index > 0 {
                if token.hasPrefix(continuingPrefix) { token = String(token.dropFirst(continuingPrefix.count)) } else { token = " " + token }
            }
            if cleansUpDecoding { token = Self.cleanedUp(token) }
            text += token
        }
        return text
    }

    static func cleanedUp(_ token: String) -> String {
        let rules = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" do not", " don't"),
                     (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]
        return rules.reduce(token) { TextNormalization.replacing($1.0, with: $1.1, in: $0) }
    }

    // MARK: Character classes, as the tokenizers library defines them for BERT

    static func isBertWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
    }

    /// Any "Other" category (control, format such as a byte-order mark or a zero-width space, unassigned, private
    /// use), except the tab and line ends, which count as whitespace.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        guard scalar != "\t", scalar != "\n", scalar != "\r" else { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isChineseIdeograph(_ scalar: Unicode.Scalar) -> Bool {
        let ranges: [ClosedRange<UInt32>] = [0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
                                             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F]
        return ranges.contains { $0.contains(scalar.value) }
    }
}

extension WordPieceTokenizer: TextTokenizer {}
