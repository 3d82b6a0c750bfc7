import FoundationEssentials
import SlopeCore

/// Turns text files (or every `.txt` file under a folder) into a training and a validation token shard.
/// Documents are separated by `separator` (e.g. the byte tokenizer's end-of-text token); the last
/// `validationFraction` of the token stream is held out. A manifest beside the shards records what they were
/// built from, so a later build from the same files (same sizes and modification times), tokenizer and split
/// reuses them instead of tokenizing again (a resumed run or an evaluation of a large corpus).
public enum ShardBuilder {
    public struct Output: Sendable, Equatable {
        public let trainPath: String
        public let validationPath: String
        public let trainTokens: Int
        public let validationTokens: Int
        public let documents: Int
        /// Whether existing shards were reused.
        public var reused = false
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case noInput(paths: [String])
        case unreadable(path: String)

        public var description: String {
            switch self {
            case .noInput(let paths): return "no text found in \(paths.joined(separator: ", ")) (looked for files and *.txt under folders)"
            case .unreadable(let path): return "cannot read \(path) as UTF-8 text"
            }
        }
    }

    /// What a pair of shards was built from, and what came out.
    struct Manifest: Codable, Equatable {
        struct Source: Codable, Equatable {
            let path: String
            let bytes: Int
            let modified: Double
        }

        struct Recipe: Codable, Equatable {
            let sources: [Source]
            let tokenizer: String
            let separator: Int32?
            let validationFraction: Double
        }

        let recipe: Recipe
        let trainTokens: Int
        let validationTokens: Int
    }

    /// `tokenizerName` identifies the tokenizer for reuse (e.g. "byte" or its files' paths).
    public static func build(
        inputs: [String], tokenizer: any TextTokenizer, tokenizerName: String, separator: Int32?, outputFolder: String,
        validationFraction: Double
    ) throws -> Output {
        let files = try textFiles(inputs)
        guard !files.isEmpty else { throw Failure.noInput(paths: inputs) }
        let recipe = Manifest.Recipe(
            sources: try files.map(source), tokenizer: "\(tokenizerName) (\(tokenizer.vocabularySize) tokens)", separator: separator,
            validationFraction: validationFraction)
        let (trainPath, validationPath, manifestPath) = (outputFolder + "/train.tokens", outputFolder + "/validation.tokens", outputFolder + "/manifest.json")
        if let data = FileManager.default.contents(atPath: manifestPath), let manifest = try? JSONDecoder().decode(Manifest.self, from: data),
           manifest.recipe == recipe, FileManager.default.fileExists(atPath: trainPath), FileManager.default.fileExists(atPath: validationPath) {
            return Output(
                trainPath: trainPath, validationPath: validationPath, trainTokens: manifest.trainTokens,
                validationTokens: manifest.validationTokens, documents: files.count, reused: true)
        }
        var tokens: [Int32] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw Failure.unreadable(path: file)
            }
            tokens += try tokenizer.encode(text)
            if let separator { tokens.append(separator) }
        }
        let (train, validation) = TokenLoader.split(tokens, validationFraction: validationFraction)
        try FileManager.default.createDirectory(atPath: outputFolder, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: manifestPath)  // the shards are about to change
        try TokenShard.write(train, to: trainPath)
        try TokenShard.write(validation, to: validationPath)
        let manifest = Manifest(recipe: recipe, trainTokens: train.count, validationTokens: validation.count)
        try AtomicFile.write(JSONEncoder().encode(manifest), to: manifestPath)
        return Output(
            trainPath: trainPath, validationPath: validationPath, trainTokens: train.count, validationTokens: validation.count,
            documents: files.count)
    }

    /// A file's path, size and modification time: what reuse compares.
    static func source(_ path: String) throws -> Manifest.Source {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { throw Failure.unreadable(path: path) }
        let bytes = (attributes[.size] as? Int) ?? (attributes[.size] as? UInt64).map(Int.init) ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        return Manifest.Source(path: path, bytes: bytes, modified: modified)
    }

    /// The files named, plus every `.txt` file under the folders named, in sorted order (reproducible).
    static func textFiles(_ inputs: [String]) throws -> [String] {
        var files: [String] = []
        for input in inputs {
            guard FileManager.default.fileExists(atPath: input) else { throw Failure.unreadable(path: input) }
            let type = (try? FileManager.default.attributesOfItem(atPath: input))?[.type] as? FileAttributeType
            if type == .typeDirectory {
                let children = (try? FileManager.default.subpathsOfDirectory(atPath: input)) ?? []
                files += children.filter { $0.hasSuffix(".txt") }.sorted().map { input + "/" + $0 }
            } else {
                files.append(input)
            }
        }
        return files
    }
}
