import FoundationEssentials

/// Turns text files (or every `.txt` file under a folder) into a training and a validation token shard.
/// Documents are separated by `separator` (e.g. the byte tokenizer's end-of-text token); the last
/// `validationFraction` of the token stream is held out.
public enum ShardBuilder {
    public struct Output: Sendable, Equatable {
        public let trainPath: String
        public let validationPath: String
        public let trainTokens: Int
        public let validationTokens: Int
        public let documents: Int
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

    public static func build(
        inputs: [String], tokenizer: any TextTokenizer, separator: Int32?, outputFolder: String, validationFraction: Double
    ) throws -> Output {
        let files = try textFiles(inputs)
        guard !files.isEmpty else { throw Failure.noInput(paths: inputs) }
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
        let output = Output(
            trainPath: outputFolder + "/train.tokens", validationPath: outputFolder + "/validation.tokens",
            trainTokens: train.count, validationTokens: validation.count, documents: files.count)
        try TokenShard.write(train, to: output.trainPath)
        try TokenShard.write(validation, to: output.validationPath)
        return output
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
