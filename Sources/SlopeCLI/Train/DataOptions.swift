import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// Where training text comes from and how it becomes tokens.
struct DataOptions: ParsableArguments {
    @Option(help: "Training data: 'embedded' (the built-in corpus), a text file, a folder of .txt files, or a .tokens shard.")
    var data = "embedded"

    @Option(help: "Tokenizer: 'byte', a tokenizer.json, or VOCAB.json,MERGES.txt (GPT-2 byte-level BPE).")
    var tokenizer = "byte"

    @Option(parsing: .unconditional, help: "Fraction of the tokens held out for validation.")
    var validationFraction = 0.05

    @Option(parsing: .unconditional, help: "Sentences of the embedded corpus to generate.")
    var corpusSentences = 60_000

    func validate() throws {
        guard validationFraction > 0, validationFraction < 1 else {
            throw ValidationError("--validation-fraction must be between 0 and 1 (exclusive), not \(validationFraction)")
        }
        guard corpusSentences >= 1 else { throw ValidationError("--corpus-sentences must be at least 1, not \(corpusSentences)") }
    }

    /// What a checkpoint records to rebuild the same token streams (and, for a token shard given directly, its size
    /// and modification time, which a resume checks: text files are checked through their shards' manifest).
    var notes: [String: String] {
        var notes = ["data": data, "tokenizer": tokenizer, "validation_fraction": "\(validationFraction)", "corpus_sentences": "\(corpusSentences)"]
        if data.hasSuffix(".tokens"), let (bytes, modified) = try? FileBytes.attributes(of: data) {
            notes["data_bytes"] = "\(bytes)"
            notes["data_modified"] = "\(modified)"
        }
        return notes
    }

    /// Refuses a token shard that changed since the run recorded it in `notes` (a resume would continue on other data).
    func requireUnchangedShard(_ notes: [String: String]) throws {
        guard data.hasSuffix(".tokens"), let recorded = notes["data_bytes"] else { return }
        let now = self.notes
        guard now["data_bytes"] == recorded, now["data_modified"] == notes["data_modified"] else {
            throw ValidationError(
                "the token shard \(data) changed since the run started (\(recorded) bytes then, \(now["data_bytes"] ?? "missing") now), so a "
                    + "resumed run would continue on other data; restore it, or pass --rebuild-data to continue on it as it is now")
        }
    }

    /// The options a checkpoint was trained with.
    static func fromNotes(_ notes: [String: String]) -> DataOptions {
        var options = DataOptions()
        options.data = notes["data"] ?? "embedded"
        options.tokenizer = notes["tokenizer"] ?? "byte"
        options.validationFraction = notes["validation_fraction"].flatMap(Double.init) ?? 0.05
        options.corpusSentences = notes["corpus_sentences"].flatMap(Int.init) ?? 60_000
        return options
    }
}

/// The tokenizer of a model imported without tokenizer files slope reads: token shards still work, text does not.
struct MissingTokenizer: TextTokenizer {
    static let name = "none"
    var vocabularySize: Int { 0 }

    func encode(_ text: String) throws -> [Int32] {
        throw ValidationError(
            "this model has no tokenizer slope reads, so it cannot take text: give token ids as a .tokens shard made with its own tokenizer")
    }

    func decode(_ tokens: [Int32]) -> String { tokens.map { "<\($0)>" }.joined() }
}

/// Token streams ready for training or evaluation.
struct LoadedData {
    let train: [Int32]
    let validation: [Int32]
    let tokenizer: any TextTokenizer
    /// The end-of-text token, when the tokenizer has one.
    let endOfText: Int32?
    /// The best achievable loss per token, when known (the embedded corpus with the byte tokenizer).
    let floor: Double?
    let description: String
}

extension DataOptions {
    /// The files `--tokenizer` names (what an export writes), nil for a model without a tokenizer slope reads.
    var tokenizerFiles: HuggingFaceTokenizerFiles.Source? {
        if tokenizer == "byte" { return .bytes }
        if tokenizer == MissingTokenizer.name { return nil }
        if tokenizer.hasSuffix(".json"), !tokenizer.contains(",") { return .tokenizerJSON(path: tokenizer) }
        let parts = tokenizer.split(separator: ",").map(String.init)
        return parts.count == 2 ? .vocabularyAndMerges(vocabulary: parts[0], merges: parts[1]) : nil
    }

    func makeTokenizer() throws -> (any TextTokenizer, Int32?) {
        switch tokenizerFiles {
        case .bytes: return (ByteTokenizer(), ByteTokenizer.endOfText)
        case .tokenizerJSON(let path):
            if try TokenizerJSON.modelType(atPath: path) == "WordPiece" {
                let wordPiece = try WordPieceTokenizer(tokenizerJSON: path)
                return (wordPiece, wordPiece.endOfText)
            }
            let bpe = try BPETokenizer(tokenizerJSON: path)
            return (bpe, bpe.endOfText)
        case let .vocabularyAndMerges(vocabulary, merges):
            let bpe = try BPETokenizer(vocabularyFile: vocabulary, mergesFile: merges)
            return (bpe, bpe.endOfText)
        case nil:
            guard tokenizer == MissingTokenizer.name else {
                throw ValidationError("--tokenizer must be 'byte', a tokenizer.json, or VOCAB.json,MERGES.txt; got '\(tokenizer)'")
            }
            return (MissingTokenizer(), nil)
        }
    }

    /// Tokenizes the data; text files are turned into shards under `cacheFolder` first. `requireUnchanged` (a
    /// resumed run) refuses shards built from inputs that have changed since, instead of rebuilding them.
    func load(cacheFolder: String, requireUnchanged: Bool = false) throws -> LoadedData {
        let (tokenizer, endOfText) = try makeTokenizer()
        guard (0..<1).contains(validationFraction) else { throw ValidationError("--validation-fraction must be in [0, 1)") }
        if data == "embedded" {
            let corpus = EmbeddedCorpus()
            let tokens = try tokenizer.encode(corpus.text(sentences: corpusSentences, seed: 2024))
            let (train, validation) = TokenLoader.split(tokens, validationFraction: validationFraction)
            // Bytes per token is 1 for the byte tokenizer, so the floor per byte is the floor per token.
            let floor = self.tokenizer == "byte" ? corpus.entropyPerByte : nil
            return LoadedData(
                train: train, validation: validation, tokenizer: tokenizer, endOfText: endOfText, floor: floor,
                description: "embedded corpus, \(corpusSentences) sentences, \(tokens.count) tokens")
        }
        if data.hasSuffix(".tokens") {
            let tokens = try TokenShard.read(data)
            let (train, validation) = TokenLoader.split(tokens, validationFraction: validationFraction)
            return LoadedData(
                train: train, validation: validation, tokenizer: tokenizer, endOfText: endOfText, floor: nil,
                description: "\(data), \(tokens.count) tokens")
        }
        let output = try ShardBuilder.build(
            inputs: [data], tokenizer: tokenizer, tokenizerName: self.tokenizer, separator: endOfText, outputFolder: cacheFolder,
            validationFraction: validationFraction, requireUnchanged: requireUnchanged)
        return LoadedData(
            train: try TokenShard.read(output.trainPath), validation: try TokenShard.read(output.validationPath), tokenizer: tokenizer,
            endOfText: endOfText, floor: nil,
            description: "\(data): \(output.documents) files, \(output.trainTokens) train + \(output.validationTokens) validation tokens"
                + (output.reused ? " (shards in \(cacheFolder) reused)" : ""))
    }
}
