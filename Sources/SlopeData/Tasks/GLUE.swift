import FoundationEssentials

/// The GLUE benchmark's tasks, read from the TSV files as distributed (gluebenchmark.com's download, the layout
/// Hugging Face's GLUE processors read): which columns hold the sentence(s) and the label, the label set, the
/// metric, and the dev file's name.
public enum GLUETask: String, CaseIterable, Sendable {
    case cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli

    /// The split to read: `train.tsv`, or the dev file (`dev_matched.tsv` for MNLI; `mismatched` is MNLI's other).
    public enum Split: Sendable { case train, dev, mismatched }

    /// The labels in the order their ids follow (Hugging Face's); empty for STS-B, whose label is a score in [0, 5].
    public var labels: [String] {
        switch self {
        case .cola, .sst2, .mrpc, .qqp, .wnli: ["0", "1"]
        case .mnli: ["contradiction", "entailment", "neutral"]
        case .qnli, .rte: ["entailment", "not_entailment"]
        case .stsb: []
        }
    }

    public var isRegression: Bool { self == .stsb }

    /// The metrics GLUE reports for the task.
    public var metrics: [String] {
        switch self {
        case .cola: ["matthews_correlation"]
        case .mrpc, .qqp: ["f1", "accuracy"]
        case .stsb: ["pearson", "spearman"]
        default: ["accuracy"]
        }
    }

    public func fileName(_ split: Split) -> String {
        switch (self, split) {
        case (_, .train): "train.tsv"
        case (.mnli, .dev): "dev_matched.tsv"
        case (.mnli, .mismatched): "dev_mismatched.tsv"
        default: "dev.tsv"
        }
    }

    /// Columns of the first sentence, the second (nil: single-sentence task) and the label (negative: from the
    /// end), and whether the file starts with a header row.
    var layout: (first: Int, second: Int?, label: Int, header: Bool) {
        switch self {
        case .cola: (3, nil, 1, false)
        case .sst2: (0, nil, 1, true)
        case .mrpc: (3, 4, 0, true)
        case .stsb: (7, 8, -1, true)
        case .qqp: (3, 4, 5, true)
        case .mnli: (8, 9, -1, true)
        case .qnli, .rte, .wnli: (1, 2, -1, true)
        }
    }
}

/// One GLUE example: one or two sentences and the label's id (classification) or score (STS-B).
public struct GLUEExample: Sendable, Equatable {
    public enum Label: Sendable, Equatable {
        case classIndex(Int)
        case score(Double)
    }

    public let first: String
    public let second: String?
    public let label: Label
}

public enum GLUEReader {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missingFile(path: String, task: GLUETask)
        case malformed(path: String, line: Int, reason: String)

        public var description: String {
            switch self {
            case let .missingFile(path, task):
                "cannot read \(path): --data must be the folder of GLUE's \(task.rawValue.uppercased()) files as distributed "
                    + "(\(task.fileName(.train)), \(task.fileName(.dev)))"
            case let .malformed(path, line, reason): "\(path), line \(line): \(reason)"
            }
        }
    }

    /// The examples of `task`'s `split` in `folder`. Fields are split at tabs with no quoting (GLUE's files are read
    /// so); a row with too few fields or an unknown label is an error naming its line — except in QQP, whose
    /// train file has a few broken rows that the reference processors skip, as here (`skipped` counts them).
    public static func read(_ task: GLUETask, split: GLUETask.Split, folder: String) throws -> (examples: [GLUEExample], skipped: Int) {
        let path = folder.hasSuffix("/") ? folder + task.fileName(split) : folder + "/" + task.fileName(split)
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure.missingFile(path: path, task: task) }
        return try parse(String(decoding: data, as: UTF8.self), task: task, path: path)
    }

    static func parse(_ text: String, task: GLUETask, path: String) throws -> (examples: [GLUEExample], skipped: Int) {
        let layout = task.layout
        let labelIDs = Dictionary(uniqueKeysWithValues: task.labels.enumerated().map { ($1, $0) })
        var examples: [GLUEExample] = []
        var skipped = 0
        // ("\r\n" is one Character in Swift, so both line ends are named.)
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = index + 1
            if number == 1 && layout.header || line.isEmpty { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let labelColumn = layout.label < 0 ? fields.count + layout.label : layout.label
            let needed = max(layout.first, layout.second ?? 0, labelColumn) + 1
            guard fields.count >= needed, labelColumn >= 0 else {
                if task == .qqp { skipped += 1; continue }
                throw Failure.malformed(path: path, line: number, reason: "\(fields.count) tab-separated fields, \(task.rawValue.uppercased()) needs at least \(needed)")
            }
            let labelText = fields[labelColumn]
            let label: GLUEExample.Label
            if task.isRegression {
                guard let score = Double(labelText) else { throw Failure.malformed(path: path, line: number, reason: "the score '\(labelText)' is not a number") }
                label = .score(score)
            } else {
                guard let id = labelIDs[labelText] else {
                    throw Failure.malformed(path: path, line: number, reason: "the label '\(labelText)' is not one of \(task.labels.joined(separator: ", "))")
                }
                label = .classIndex(id)
            }
            examples.append(GLUEExample(first: fields[layout.first], second: layout.second.map { fields[$0] }, label: label))
        }
        return (examples, skipped)
    }
}
