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
        case missing(path: String)
        case unreadable(path: String, reason: String)
        case notText(path: String)
        case changedSinceBuilt(folder: String, changes: [String])

        public var description: String {
            switch self {
            case .noInput(let paths): return "no text found in \(paths.joined(separator: ", ")) (looked for files and *.txt under folders)"
            case .missing(let path): return "\(path) does not exist; pass a text file, a folder of .txt files or a .tokens shard"
            case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
            case .notText(let path): return "\(path) is not UTF-8 text (a binary file?); pass text, or a .tokens shard"
            case let .changedSinceBuilt(folder, changes):
                return "the data changed since the shards in \(folder) were built (\(changes.joined(separator: "; "))), so a resumed run "
                    + "would continue on other data; restore it, or pass --rebuild-data to continue on the data as it is now"
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

    /// `tokenizerName` identifies the tokenizer for reuse (e.g. "byte" or its files' paths). With `requireUnchanged`
    /// (a resumed run), shards whose manifest no longer matches the inputs are refused instead of rebuilt.
    public static func build(
        inputs: [String], tokenizer: any TextTokenizer, tokenizerName: String, separator: Int32?, outputFolder: String,
        validationFraction: Double, requireUnchanged: Bool = false
    ) throws -> Output {
        let files = try textFiles(inputs)
        guard !files.isEmpty else { throw Failure.noInput(paths: inputs) }
        let recipe = Manifest.Recipe(
            sources: try files.map(source), tokenizer: "\(tokenizerName) (\(tokenizer.vocabularySize) tokens)", separator: separator,
            validationFraction: validationFraction)
        let (trainPath, validationPath, manifestPath) = (outputFolder + "/train.tokens", outputFolder + "/validation.tokens", outputFolder + "/manifest.json")
        let existing = FileManager.default.contents(atPath: manifestPath).flatMap { try? JSONDecoder().decode(Manifest.self, from: $0) }
        if let manifest = existing, manifest.recipe == recipe, FileManager.default.fileExists(atPath: trainPath),
           FileManager.default.fileExists(atPath: validationPath) {
            return Output(
                trainPath: trainPath, validationPath: validationPath, trainTokens: manifest.trainTokens,
                validationTokens: manifest.validationTokens, documents: files.count, reused: true)
        }
        if requireUnchanged, let manifest = existing, manifest.recipe != recipe {
            throw Failure.changedSinceBuilt(folder: outputFolder, changes: differences(from: manifest.recipe, to: recipe))
        }
        var tokens: [Int32] = []
        for file in files {
            let bytes: [UInt8]
            do { bytes = try FileBytes.read(file, offset: 0, count: FileBytes.size(of: file)) } catch let failure as FileBytes.ReadFailure {
                throw Failure.unreadable(path: file, reason: failure.reason)
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { throw Failure.notText(path: file) }
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

    /// What differs between the recipe the shards were built from and the inputs now, said per file.
    static func differences(from old: Manifest.Recipe, to new: Manifest.Recipe) -> [String] {
        let before = Dictionary(old.sources.map { ($0.path, $0) }, uniquingKeysWith: { $1 })
        let after = Dictionary(new.sources.map { ($0.path, $0) }, uniquingKeysWith: { $1 })
        var changes: [String] = []
        for path in Set(before.keys).union(after.keys).sorted() {
            switch (before[path], after[path]) {
            case (nil, _?): changes.append("\(path) added")
            case (_?, nil): changes.append("\(path) gone")
            case let (b?, a?) where b.bytes != a.bytes: changes.append("\(path) was \(b.bytes) bytes, now \(a.bytes)")
            case let (b?, a?) where b != a: changes.append("\(path) modified")
            default: break
            }
        }
        if old.tokenizer != new.tokenizer { changes.append("tokenizer \(old.tokenizer) → \(new.tokenizer)") }
        if old.validationFraction != new.validationFraction { changes.append("validation fraction \(old.validationFraction) → \(new.validationFraction)") }
        return changes.isEmpty ? ["its recipe differs"] : changes
    }

    /// A file's path, size and modification time: what reuse compares.
    static func source(_ path: String) throws -> Manifest.Source {
        do {
            let (bytes, modified) = try FileBytes.attributes(of: path)
            return Manifest.Source(path: path, bytes: bytes, modified: modified)
        } catch let failure as FileBytes.ReadFailure {
            throw Failure.unreadable(path: path, reason: failure.reason)
        }
    }

    /// The files named, plus every `.txt` file under the folders named, in sorted order (reproducible).
    static func textFiles(_ inputs: [String]) throws -> [String] {
        var files: [String] = []
        for input in inputs {
            guard FileManager.default.fileExists(atPath: input) else { throw Failure.missing(path: input) }
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
