import FoundationEssentials

/// A SQuAD v1.1 question with its paragraph and gold answers (their text and character offset in the context).
public struct SQuADQuestion: Sendable, Equatable {
    public struct Answer: Sendable, Equatable {
        public let text: String
        /// Offset of the answer's first character in the context, in Unicode scalars (Python's string indices).
        public let start: Int
    }

    public let id: String
    public let question: String
    public let context: String
    public let answers: [Answer]
}

public enum SQuADReader {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String)
        case malformed(path: String, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let path): "cannot read the SQuAD file \(path)"
            case let .malformed(path, reason): "the SQuAD file \(path) is not usable: \(reason)"
            }
        }
    }

    /// The questions of a SQuAD v1.1 file (`train-v1.1.json`, `dev-v1.1.json`) in file order. Every question must have
    /// an id and, in a training file, an answer; an answer's offset must lie inside its context.
    public static func read(path: String, requireAnswers: Bool) throws -> [SQuADQuestion] {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure.unreadable(path: path) }
        return try parse(data, path: path, requireAnswers: requireAnswers)
    }

    static func parse(_ data: Data, path: String, requireAnswers: Bool) throws -> [SQuADQuestion] {
        struct File: Decodable {
            struct Article: Decodable { let paragraphs: [Paragraph] }
            struct Paragraph: Decodable { let context: String; let qas: [QA] }
            struct QA: Decodable { let id: String; let question: String; let answers: [Answer]? }
            struct Answer: Decodable { let text: String; let answer_start: Int }
            let data: [Article]
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw Failure.malformed(path: path, reason: "expected SQuAD v1.1's JSON (data → paragraphs → context and qas) (\(error))")
        }
        var questions: [SQuADQuestion] = []
        for paragraph in file.data.flatMap(\.paragraphs) {
            let length = paragraph.context.unicodeScalars.count
            for qa in paragraph.qas {
                let answers = (qa.answers ?? []).map { SQuADQuestion.Answer(text: $0.text, start: $0.answer_start) }
                if requireAnswers, answers.isEmpty {
                    throw Failure.malformed(path: path, reason: "question \(qa.id) has no answer (a training file needs one per question)")
                }
                if let bad = answers.first(where: { $0.start < 0 || $0.start + $0.text.unicodeScalars.count > length }) {
                    throw Failure.malformed(
                        path: path, reason: "question \(qa.id): the answer '\(bad.text)' at offset \(bad.start) runs past its context (\(length) characters)")
                }
                questions.append(SQuADQuestion(id: qa.id, question: qa.question, context: paragraph.context, answers: answers))
            }
        }
        return questions
    }
}
