import Dispatch
import FoundationEssentials
import HeapModule
import Synchronization

/// GPT-2's byte-level BPE: text is split into words (GPT-2's pattern), each word's UTF-8 bytes are mapped
/// to printable characters, then adjacent symbols are merged in the order of the merge list.
/// Lossless for any text; ids match Hugging Face's GPT-2 tokenizer for the same vocab and merges.
public struct BPETokenizer: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String)
        case malformed(path: String, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let path): return "cannot read tokenizer file \(path)"
            case let .malformed(path, reason): return "tokenizer file \(path) is not usable: \(reason)"
            }
        }
    }

    let encoder: [String: Int32]
    let decoder: [Int32: String]
    let ranks: [Pair: Int]
    /// Tokens matched in the text before pre-tokenisation (tokenizer.json's added tokens, or GPT-2's
    /// `<|endoftext|>`), longest first: written in the text they are their own id, as the `tokenizers` library does.
    let specialTokens: SpecialTokens
    /// How text is cut into words before merging.
    let preTokenization: PreTokenization
    /// Ids put around every encoded text (a `TemplateProcessing` post-processor's special tokens, e.g. a BOS).
    let prefix: [Int32], suffix: [Int32]
    /// What merges start from: bytes (byte-level BPE) or characters (SentencePiece style).
    let alphabet: SymbolAlphabet
    /// Applied to each stretch of text between special tokens, before pre-tokenisation.
    let normalization: TextNormalization
    /// How ids become text again.
    let decoding: TokenDecoding
    /// A word that is itself in the vocabulary is that token, merges or not (tokenizer.json's `ignore_merges`).
    /// (Last: between `preTokenization` and `prefix` it made debug builds of Swift 6.3.1 copy the struct wrongly.)
    let ignoresMerges: Bool

    /// The symbols a word starts as, before merges.
    public enum SymbolAlphabet: Sendable, Equatable {
        /// Each UTF-8 byte as GPT-2's printable character for it (byte-level BPE: every text is covered).
        case bytes
        /// Each Unicode scalar as itself. One the vocabulary lacks becomes its UTF-8 bytes as `<0xXX>` tokens
        /// (`byteFallback`) or the unknown token (consecutive ones fused into one with `fusesUnknown`).
        case characters(byteFallback: Bool, unknown: String?, fusesUnknown: Bool)
    }

    /// tokenizer.json's `decoder`.
    public enum TokenDecoding: Sendable, Equatable {
        /// GPT-2's byte mapping reversed.
        case byteLevel
        /// SentencePiece style: `replacement` (▁) back to spaces, `<0xXX>` tokens to their bytes with
        /// `byteFallback`, then up to `strippedLeadingSpaces` spaces removed from the start of the text.
        case sentencePiece(replacement: String, byteFallback: Bool, strippedLeadingSpaces: Int)
        /// The tokens joined by spaces: what the library does for a tokenizer without a decoder.
        case spaced
    }

    /// The end-of-text (document separator) id: the special token `<|endoftext|>`, `<|end_of_text|>`, `</s>` or
    /// `<eos>`, when the tokenizer has one.
    public var endOfText: Int32? {
        for name in ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"] {
            if let found = specialTokens.id(of: name) { return found }
        }
        return nil
    }

    struct Pair: Hashable, Sendable {
        let first: String, second: String
    }

    public var vocabularySize: Int { (decoder.keys.max().map { Int($0) + 1 }) ?? 0 }

    /// From a vocabulary (symbol → id) and merges in priority order ("Ġ t" style pairs); `specialTokens` (text → id)
    /// are matched in the text as themselves (default: GPT-2's `<|endoftext|>` when the vocabulary has it).
    public init(
        vocabulary: [String: Int32], merges: [(String, String)], specialTokens: [String: Int32]? = nil,
        preTokenization: PreTokenization = .gpt2, ignoresMerges: Bool = false, prefix: [Int32] = [], suffix: [Int32] = [],
        alphabet: SymbolAlphabet = .bytes, normalization: TextNormalization = .none, decoding: TokenDecoding = .byteLevel
    ) {
        let specials = specialTokens ?? vocabulary.filter { $0.key == "<|endoftext|>" }
        self.specialTokens = SpecialTokens(specials)
        self.preTokenization = preTokenization
        self.ignoresMerges = ignoresMerges
        self.prefix = prefix
        self.suffix = suffix
        self.alphabet = alphabet
        self.normalization = normalization
        self.decoding = decoding
        encoder = vocabulary
        var decoder = Dictionary(vocabulary.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
        for (bytes, id) in self.specialTokens.tokens where decoder[id] == nil {  // added tokens outside the vocabulary decode to their text
            decoder[id] = alphabet == .bytes ? bytes.map { Self.byteToCharacter[Int($0)] }.joined() : String(decoding: bytes, as: UTF8.self)
        }
        self.decoder = decoder
        var ranks: [Pair: Int] = [:]
        for (rank, merge) in merges.enumerated() where ranks[Pair(first: merge.0, second: merge.1)] == nil {
            ranks[Pair(first: merge.0, second: merge.1)] = rank
        }
        self.ranks = ranks
    }

    /// GPT-2's files: `vocab.json` and `merges.txt` (first line a version comment).
    public init(vocabularyFile: String, mergesFile: String) throws {
        guard let vocabularyData = FileManager.default.contents(atPath: vocabularyFile) else { throw Failure.unreadable(path: vocabularyFile) }
        guard let mergesData = FileManager.default.contents(atPath: mergesFile) else { throw Failure.unreadable(path: mergesFile) }
        try self.init(vocabularyJSON: vocabularyData, merges: mergesData, vocabularyFile: vocabularyFile, mergesFile: mergesFile)
    }

    /// The same from the two files' contents (the names are for errors).
    public init(vocabularyJSON vocabularyData: Data, merges mergesData: Data, vocabularyFile: String = "vocab.json",
                mergesFile: String = "merges.txt") throws {
        let vocabulary: [String: Int32]
        do { vocabulary = try JSONDecoder().decode([String: Int32].self, from: vocabularyData) } catch {
            throw Failure.malformed(path: vocabularyFile, reason: "expected a JSON object of token → id")
        }
        try Self.checkIDs(vocabulary, path: vocabularyFile)
        let merges = try Self.parseMerges(String(decoding: mergesData, as: UTF8.self).split(separator: "\n").map(String.init), path: mergesFile)
        self.init(vocabulary: vocabulary, merges: merges)
    }

    /// A Hugging Face `tokenizer.json` with a BPE model (`model.vocab`, `model.merges`).
    public init(tokenizerJSON path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure.unreadable(path: path) }
        try self.init(tokenizerJSONData: data, path: path)
    }

    /// The same from the file's contents (`path` is for errors). A component slope cannot run as the `tokenizers`
    /// library does (see docs/training.md) is refused with its name rather than ignored.
    public init(tokenizerJSONData data: Data, path: String = "tokenizer.json") throws {
        struct Component: Decodable {
            let type: String?
            let add_prefix_space: Bool?
            let processors: [Component]?
            let pattern: Pattern?
            let single: [TemplateProcessing.Piece]?
            let special_tokens: [String: TemplateProcessing.Special]?
            let decoders: [Component]?
            let content: String?
            let replacement: String?
            let prepend_scheme: String?
            let start: Int?
            let stop: Int?
            struct Pattern: Decodable { let Regex: String?; let String: String? }
            var name: String {
                type.map { t in t + ((processors ?? decoders).map { " (" + $0.map(\.name).joined(separator: ", ") + ")" } ?? "") } ?? "?"
            }
            /// The stages of a `Sequence`, or this component alone.
            var stages: [Component] { type == "Sequence" ? processors ?? decoders ?? [] : [self] }
        }
        struct File: Decodable {
            struct Model: Decodable {
                let type: String?
                let vocab: [String: Int32]
                let merges: [Merge]
                let byte_fallback: Bool?
                let ignore_merges: Bool?
                let continuing_subword_prefix: String?
                let end_of_word_suffix: String?
                let unk_token: String?
                let fuse_unk: Bool?
            }
            struct AddedToken: Decodable { let id: Int32; let content: String }
            let model: Model
            let added_tokens: [AddedToken]?
            let normalizer: TextNormalization.Component?
            let pre_tokenizer: PreTokenization.Component?
            let post_processor: Component?
            let decoder: Component?
        }
        /// Merges are "a b" strings in older files and ["a", "b"] arrays in newer ones.
        enum Merge: Decodable {
            case text(String), pair([String])
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) { self = .text(text) } else { self = .pair(try container.decode([String].self)) }
            }
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw Failure.malformed(path: path, reason: "expected a BPE model with vocab and merges (\(error))")
        }
        func refuse(_ what: String) -> Failure {
            .malformed(path: path, reason: "\(what) is not supported yet (slope reads byte-level BPE tokenizers as GPT-2's and SentencePiece-style BPE as LLaMA 2's)")
        }
        func normalizationSteps(_ normalizer: TextNormalization.Component?) throws -> TextNormalization {
            do throws(ComponentRefusal) { return try TextNormalization(normalizer) } catch { throw refuse(error.what) }
        }
        if let type = file.model.type, type != "BPE" { throw Failure.malformed(path: path, reason: "model type is \(type), not BPE") }
        let preName = file.pre_tokenizer?.name ?? "none"
        let stages = file.pre_tokenizer?.stages ?? []
        var addsPrefixSpace = false
        var metaspace: PreTokenization.Metaspace?
        /// The splitting pre-tokenizers among `stages`; any other is refused.
        func splittingSteps(_ stages: ArraySlice<PreTokenization.Component>) throws -> [PreTokenization.Step] {
            do throws(ComponentRefusal) { return try PreTokenization.splittingSteps(stages) } catch {
                throw refuse("\(error.what) (in the pre-tokenizer \(preName))")
            }
        }
        var steps: [PreTokenization.Step]
        let alphabet: SymbolAlphabet, normalization: TextNormalization, decoding: TokenDecoding
        if let byteLevel = stages.last, byteLevel.type == "ByteLevel" {
            // Byte-level BPE: splitting steps (LLaMA 3's Split, Digits, …) before the ByteLevel mapping.
            steps = try splittingSteps(stages.dropLast())
            if byteLevel.use_regex ?? true { steps.append(.gpt2Words) }
            addsPrefixSpace = byteLevel.add_prefix_space ?? false
            if let decoder = file.decoder, decoder.type != "ByteLevel" { throw refuse("the decoder \(decoder.name) with a byte-level pre-tokenizer") }
            if file.model.byte_fallback == true { throw refuse("byte_fallback with a byte-level pre-tokenizer") }
            (alphabet, normalization, decoding) = (.bytes, try normalizationSteps(file.normalizer), .byteLevel)
        } else {
            // SentencePiece style (LLaMA 2, Mistral): characters, spaces as ▁ through the normalizer or Metaspace.
            normalization = try normalizationSteps(file.normalizer)
            if stages.count == 1, stages[0].type == "Metaspace" {
                metaspace = try Self.metaspace(stages[0].replacement, stages[0].prepend_scheme, stages[0].add_prefix_space, stages[0].split ?? true) {
                    refuse("the pre-tokenizer \(preName) (\($0))")
                }
                steps = []
            } else {
                steps = try splittingSteps(stages[...])
            }
            // Decoder: Replace(▁ → " "), ByteFallback, Fuse, Strip(" ", n, 0) as LLaMA 2's; or Metaspace; or none.
            var replacement = "\u{2581}", byteFallback = false, stripped = 0
            for stage in file.decoder?.stages ?? [] {
                switch stage.type {
                case "Replace" where stage.content == " " && stage.pattern?.String != nil: replacement = stage.pattern?.String ?? replacement
                case "ByteFallback": byteFallback = true
                case "Fuse": continue
                case "Strip" where stage.content == " " && (stage.stop ?? 0) == 0: stripped = stage.start ?? 0
                case "Metaspace":
                    let decoderSpace = try Self.metaspace(stage.replacement, stage.prepend_scheme, stage.add_prefix_space, true) {
                        refuse("the decoder \(file.decoder?.name ?? "?") (\($0))")
                    }
                    replacement = decoderSpace.replacement
                    stripped = decoderSpace.prepend == .never ? 0 : 1
                default: throw refuse("the decoder \(file.decoder?.name ?? "?")")
                }
            }
            decoding = file.decoder == nil ? .spaced : .sentencePiece(replacement: replacement, byteFallback: byteFallback, strippedLeadingSpaces: stripped)
            alphabet = .characters(byteFallback: file.model.byte_fallback ?? false, unknown: file.model.unk_token, fusesUnknown: file.model.fuse_unk ?? false)
        }
        // Post-processor: ByteLevel only moves offsets; TemplateProcessing's single template puts special tokens around.
        var (prefix, suffix): ([Int32], [Int32]) = ([], [])
        for post in file.post_processor?.stages ?? [] {
            switch post.type {
            case "ByteLevel": continue
            case "TemplateProcessing":
                let around = try TemplateProcessing.ids(single: post.single, specialTokens: post.special_tokens)
                    .mapError { refuse("the post-processor's unknown token \($0.name)") }.get()
                (prefix, suffix) = (prefix + around.prefix, suffix + around.suffix)
            default: throw refuse("the post-processor \(file.post_processor?.name ?? "?")")
            }
        }
        if let prefix = file.model.continuing_subword_prefix ?? file.model.end_of_word_suffix { throw refuse("the subword affix '\(prefix)'") }
        // Newer files give each merge as a pair: symbols may then hold spaces, so pairs are taken as they are.
        let merges = try file.model.merges.flatMap { merge -> [(String, String)] in
            switch merge {
            case .text(let text): return try Self.parseMerges([text], path: path)  // (none for "#version…" or "")
            case .pair(let parts):
                guard parts.count == 2 else { throw Failure.malformed(path: path, reason: "merge \(parts) is not two symbols") }
                return [(parts[0], parts[1])]
            }
        }
        try Self.checkIDs(file.model.vocab, path: path)
        let added = Dictionary((file.added_tokens ?? []).map { ($0.content, $0.id) }, uniquingKeysWith: { first, _ in first })
        try Self.checkIDs(added.merging(file.model.vocab) { first, _ in first }, path: path)
        self.init(
            vocabulary: file.model.vocab, merges: merges, specialTokens: added,
            preTokenization: PreTokenization(steps: steps, addsPrefixSpace: addsPrefixSpace, metaspace: metaspace),
            ignoresMerges: file.model.ignore_merges ?? false, prefix: prefix, suffix: suffix, alphabet: alphabet,
            normalization: normalization, decoding: decoding)
    }

    /// A `Metaspace` component's settings (`prepend_scheme`, or the older `add_prefix_space`).
    static func metaspace(
        _ replacement: String?, _ scheme: String?, _ addsPrefixSpace: Bool?, _ split: Bool, refuse: (String) -> Failure
    ) throws -> PreTokenization.Metaspace {
        guard let replacement, !replacement.isEmpty else { throw refuse("no replacement") }
        let prepend: PreTokenization.Metaspace.Prepend
        if let scheme {
            guard let parsed = PreTokenization.Metaspace.Prepend(rawValue: scheme) else { throw refuse("prepend_scheme \(scheme)") }
            prepend = parsed
        } else {
            prepend = addsPrefixSpace ?? true ? .always : .never
        }
        return PreTokenization.Metaspace(replacement: replacement, prepend: prepend, split: split)
    }

    /// Ids from a file size the model's vocabulary (the largest id + 1): they must be numbered from 0, without a
    /// gap that would make the embedding table far larger than the vocabulary (a damaged or forged id).
    static func checkIDs(_ vocabulary: [String: Int32], path: String) throws {
        let limit = 2 * vocabulary.count + 1024
        if let (symbol, id) = vocabulary.first(where: { $0.value < 0 || Int($0.value) >= limit }) {
            throw Failure.malformed(
                path: path, reason: "token '\(symbol)' has id \(id), but the vocabulary has \(vocabulary.count) entries; ids must be "
                    + "numbered from 0 (at most \(limit - 1) here)")
        }
    }

    static func parseMerges(_ lines: [String], path: String) throws -> [(String, String)] {
        try lines.filter { !$0.hasPrefix("#version") && !$0.isEmpty }.map { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { throw Failure.malformed(path: path, reason: "merge '\(line)' is not two symbols") }
            return (String(parts[0]), String(parts[1]))
        }
    }

    // MARK: Encoding

    /// Large texts are cut into pieces at newlines the pre-tokenisation never crosses and encoded in
    /// parallel; every word's merges are computed once per piece (words repeat: Zipf).
    public func encode(_ text: String) throws -> [Int32] {
        prefix + (try encodeText(text)) + suffix
    }

    public func encodeWithoutAddedTokens(_ text: String) throws -> [Int32] { try encodeText(text) }

    func encodeText(_ text: String) throws -> [Int32] {
        try specialTokens.encode(text) { stretch, atStart in try encodeOrdinary(stretch, atStart: atStart) }
    }

    /// Text without special tokens; `atStart`: it begins the whole text (SentencePiece's `first` prepending).
    func encodeOrdinary(_ text: String, atStart: Bool = true) throws -> [Int32] {
        if alphabet != .bytes {
            let rewritten = preTokenization.spacesReplaced(normalization.apply(text), atStart: atStart)
            return rewritten.isEmpty ? [] : try encodePiece(rewritten[...])
        }
        var text = normalization.apply(text)
        if preTokenization.addsPrefixSpace, !preTokenization.splitsFirst, let first = text.unicodeScalars.first, first != " " { text = " " + text }
        let pieces = preTokenization.isGPT2 ? Self.independentPieces(text, targetBytes: Self.pieceBytes) : [text[...]]
        if pieces.count == 1 { return try encodePiece(text[...]) }
        let results = Mutex([Int: Result<[Int32], any Error>]())
        DispatchQueue.concurrentPerform(iterations: pieces.count) { index in
            let result = Result { try encodePiece(pieces[index]) }
            results.withLock { $0[index] = result }
        }
        let collected = results.withLock { $0 }
        var ids: [Int32] = []
        for index in pieces.indices { ids += try collected[index]!.get() }
        return ids
    }

    static let pieceBytes = 1 << 18

    private func encodePiece(_ text: Substring) throws -> [Int32] {
        var ids: [Int32] = []
        // Keyed by the exact bytes: Substring's equality is canonical equivalence ("Å" U+00C5 == "Å" U+212B).
        var known: [[UInt8]: [Int32]] = [:]
        for word in preTokenization.words(text) {
            let key = Array(word.utf8)
            if let cached = known[key] {
                ids += cached
                continue
            }
            if ignoresMerges, let id = encoder[alphabet == .bytes ? key.map { Self.byteToCharacter[Int($0)] }.joined() : String(word)] {
                known[key] = [id]
                ids.append(id)
                continue
            }
            var wordIDs: [Int32] = []
            for symbol in merge(try symbols(of: word)) {
                guard let id = encoder[symbol] else {
                    throw Failure.malformed(path: "vocabulary", reason: "symbol '\(symbol)' has no id; the vocabulary must contain all 256 byte symbols")
                }
                wordIDs.append(id)
            }
            known[key] = wordIDs
            ids += wordIDs
        }
        return ids
    }

    /// A word's symbols before merges, by the alphabet.
    private func symbols(of word: Substring) throws -> [String] {
        guard case let .characters(byteFallback, unknown, fusesUnknown) = alphabet else {
            return word.utf8.map { Self.byteToCharacter[Int($0)] }
        }
        var symbols: [String] = []
        for scalar in word.unicodeScalars {
            let character = String(scalar)
            if encoder[character] != nil {
                symbols.append(character)
                continue
            }
            let bytes = character.utf8.map(Self.fallbackToken)
            if byteFallback, bytes.allSatisfy({ encoder[$0] != nil }) {
                symbols += bytes
                continue
            }
            guard let unknown else {
                throw Failure.malformed(
                    path: "vocabulary", reason: "character U+\(String(scalar.value, radix: 16, uppercase: true)) has no id, and the tokenizer has no byte fallback or unknown token")
            }
            if fusesUnknown, symbols.last == unknown { continue }
            symbols.append(unknown)
        }
        return symbols
    }

    /// SentencePiece's byte-fallback token for a byte: `<0xE4>`.
    static func fallbackToken(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
    }

    /// The byte a `<0xXX>` token stands for.
    static func fallbackByte(_ token: String) -> UInt8? {
        guard token.utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        return UInt8(token.dropFirst(3).dropLast(), radix: 16)
    }

    /// `text` cut after a newline that sits between two visible ASCII characters, about every `targetBytes`:
    /// GPT-2's pattern matches such a newline alone (`\s+`), and no match starts before it and ends after it,
    /// so the pieces' words are exactly the whole text's.
    static func independentPieces(_ text: String, targetBytes: Int) -> [Substring] {
        let bytes = text.utf8
        guard bytes.count > targetBytes else { return [text[...]] }
        func visible(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F }
        var pieces: [Substring] = []
        var start = bytes.startIndex
        var cursor = bytes.index(start, offsetBy: targetBytes, limitedBy: bytes.endIndex) ?? bytes.endIndex
        while cursor < bytes.endIndex {
            var cut: String.Index?
            var position = cursor
            while position < bytes.endIndex {
                if bytes[position] == 0x0A, position > bytes.startIndex, visible(bytes[bytes.index(before: position)]) {
                    let next = bytes.index(after: position)
                    if next < bytes.endIndex, visible(bytes[next]) {
                        cut = next
                        break
                    }
                }
                position = bytes.index(after: position)
            }
            guard let cut else { break }
            pieces.append(text[start..<cut])
            start = cut
            cursor = bytes.index(cut, offsetBy: targetBytes, limitedBy: bytes.endIndex) ?? bytes.endIndex
        }
        pieces.append(text[start...])
        return pieces
    }

    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        switch decoding {
        case .byteLevel:
            for id in ids {
                guard let symbol = decoder[id] else { continue }
                for character in symbol { if let byte = Self.characterToByte[character] { bytes.append(byte) } }
            }
            return String(decoding: bytes, as: UTF8.self)
        case let .sentencePiece(replacement, byteFallback, strippedLeadingSpaces):
            for id in ids {
                guard let token = decoder[id] else { continue }
                if byteFallback, let byte = Self.fallbackByte(token) {
                    bytes.append(byte)
                } else {
                    bytes += TextNormalization.replacing(replacement, with: " ", in: token).utf8
                }
            }
            var text = String(decoding: bytes, as: UTF8.self)[...]
            for _ in 0..<strippedLeadingSpaces where text.unicodeScalars.first == " " { text = Substring(text.unicodeScalars.dropFirst()) }
            return String(text)
        case .spaced:
            return ids.compactMap { decoder[$0] }.joined(separator: " ")
        }
    }

    /// Applies merges to one word's symbols, lowest rank first (leftmost among equal ranks), until none applies:
    /// the `tokenizers` library's order. A heap of candidate pairs keeps this O(n log n), so a SentencePiece-style
    /// tokenizer's whole-text "word" is as cheap as many short ones.
    func merge(_ start: [String]) -> [String] {
        guard start.count > 1 else { return start }
        struct Candidate: Comparable {
            let rank: Int, position: Int
            static func < (a: Candidate, b: Candidate) -> Bool { (a.rank, a.position) < (b.rank, b.position) }
        }
        var symbols = start
        var next = Array(1...symbols.count), previous = Array(-1..<(symbols.count - 1))
        next[symbols.count - 1] = -1
        var alive = [Bool](repeating: true, count: symbols.count)
        var heap = Heap<Candidate>()
        func consider(_ left: Int) {
            guard left >= 0, next[left] >= 0, let rank = ranks[Pair(first: symbols[left], second: symbols[next[left]])] else { return }
            heap.insert(Candidate(rank: rank, position: left))
        }
        for i in 0..<(symbols.count - 1) { consider(i) }
        while let candidate = heap.popMin() {
            let left = candidate.position, right = next[left]
            // Stale: a neighbour was merged since this pair was queued.
            guard alive[left], right >= 0, ranks[Pair(first: symbols[left], second: symbols[right])] == candidate.rank else { continue }
            symbols[left] += symbols[right]
            alive[right] = false
            next[left] = next[right]
            if next[right] >= 0 { previous[next[right]] = left }
            consider(previous[left])
            consider(left)
        }
        return symbols.indices.filter { alive[$0] }.map { symbols[$0] }
    }

    /// GPT-2's pre-tokenisation: contractions, letter runs, digit runs, other runs (each with an optional
    /// leading space), and whitespace (see ``GPT2PreTokenizer``).
    static func words(_ text: some StringProtocol) -> [Substring] {
        GPT2PreTokenizer.words(Substring(text))
    }

    /// GPT-2's reversible map from bytes to printable characters (printable Latin-1 bytes map to themselves,
    /// the rest to code points from 256 on), so every byte sequence is a string of visible symbols.
    public static let byteToCharacter: [String] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codePoints = printable
        var next = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            codePoints.append(256 + next)
            next += 1
        }
        var table = [String](repeating: "", count: 256)
        for (byte, codePoint) in zip(printable, codePoints) { table[byte] = String(Character(Unicode.Scalar(codePoint)!)) }
        return table
    }()

    static let characterToByte: [Character: UInt8] = {
        var table: [Character: UInt8] = [:]
        for (byte, symbol) in byteToCharacter.enumerated() { table[Character(symbol)] = UInt8(byte) }
        return table
    }()
}
