import Foundation
import SLoPe
import SlopeData
import XCTest

/// `slope finetune` on a GLUE task laid out as distributed: a tiny encoder (saved as a transformers folder with a
/// WordPiece tokenizer.json) learns a synthetic SST-2 — sentences of letters from the first half of the alphabet are
/// positive, from the second half negative — and reports the dev accuracy, the predictions and the model.
final class FinetuneCommandTests: XCTestCase {
    static let tokenizer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers/bert-wordpiece.json").path

    /// A tiny encoder saved as a transformers folder `bert` in `folder`, with the WordPiece fixture as its tokenizer.
    func initialModel(in folder: URL, contextLength: Int, seed: UInt64) throws -> String {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: Self.tokenizer)
        let model = try EncoderModel(
            configuration: EncoderConfiguration(
                vocabularySize: tokenizer.vocabularySize, contextLength: contextLength, layers: 1, hiddenSize: 32, heads: 4, intermediateSize: 64),
            backend: CPUBackend(), seed: seed)
        let initial = folder.appendingPathComponent("bert").path
        try HuggingFaceEncoderExport.write(model, to: initial)
        try FileManager.default.copyItem(atPath: Self.tokenizer, toPath: initial + "/tokenizer.json")
        return initial
    }

    /// A seeded stream of integers below `n` (the synthetic tasks' words).
    struct Draws {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % n
        }
    }

    func testFinetuningLearnsASentenceClassificationTask() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let cpu = CPUBackend()
        let initial = try initialModel(in: folder, contextLength: 32, seed: 1)
        var draws = Draws(state: 3)
        func next(_ n: Int) -> Int { draws.next(n) }
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        func split(_ count: Int) -> String {
            "sentence\tlabel\n" + (0..<count).map { _ in
                let positive = next(2) == 1
                let words = (0..<(3 + next(5))).map { _ in String(letters[(positive ? 0 : 13) + next(13)]) }
                return words.joined(separator: " ") + "\t" + (positive ? "1" : "0")
            }.joined(separator: "\n") + "\n"
        }
        let data = folder.appendingPathComponent("SST-2")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try split(96).write(to: data.appendingPathComponent("train.tsv"), atomically: true, encoding: .utf8)
        try split(40).write(to: data.appendingPathComponent("dev.tsv"), atomically: true, encoding: .utf8)

        let result = try runner.run([
            "finetune", "--task", "sst2", "--data", data.path, "--init", initial, "--out", "run", "--epochs", "4", "--batch-size", "8",
            "--lr", "2e-3", "--max-length", "16", "--device", "cpu",
        ], in: folder)
        XCTAssertEqual(result.status, 0, result.errors + result.output)
        XCTAssertTrue(result.output.contains("epoch 4: train loss"), result.output)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run/metrics.json"))) as? [String: Any]
        let accuracy = Double(((metrics?["dev"] as? [String: String])?["accuracy"]) ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(accuracy, 0.9, result.output)
        let predictions = try String(contentsOf: folder.appendingPathComponent("run/predictions-dev.tsv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(predictions.count, 41, "a header and one line per dev example")
        XCTAssertTrue(predictions.dropFirst().allSatisfy { $0.hasSuffix("\t0") || $0.hasSuffix("\t1") })
        // The fine-tuned model is a transformers folder again, head included.
        let (encoder, _) = try HuggingFaceEncoderImport.load(folder: folder.appendingPathComponent("run/model").path, dtype: .float32, backend: cpu)
        XCTAssertEqual(try HuggingFaceEncoderImport.loadTaskHead(folder: folder.appendingPathComponent("run/model").path, encoder: encoder)?.task, .classification(labels: 2))

        // Bad inputs: an unknown task, an existing --out, no model folder, a model without tokenizer.json, SQuAD without its files.
        let refusals: [([String], String)] = [
            (["finetune", "--task", "squad2", "--data", data.path, "--init", initial, "--out", "x"], "--task must be one of"),
            (["finetune", "--task", "sst2", "--data", data.path, "--init", initial, "--out", "run"], "exists"),
            (["finetune", "--task", "sst2", "--data", data.path, "--init", folder.path, "--out", "y"], "not a transformers model folder"),
            (["finetune", "--task", "sst2", "--data", data.path, "--init", folder.appendingPathComponent("run/model-no-tokenizer").path, "--out", "z"],
             "has no tokenizer.json"),
            (["finetune", "--task", "squad", "--data", data.path, "--init", initial, "--out", "w"], "has no train-v1.1.json"),
        ]
        // (a transformers folder without its tokenizer: the fine-tuned model's, tokenizer removed)
        let bare = folder.appendingPathComponent("run/model-no-tokenizer").path
        try FileManager.default.copyItem(atPath: folder.appendingPathComponent("run/model").path, toPath: bare)
        try FileManager.default.removeItem(atPath: bare + "/tokenizer.json")
        for (arguments, message) in refusals {
            let refused = try runner.run(arguments, in: folder)
            XCTAssertNotEqual(refused.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(refused.errors.contains(message), "\(arguments): \(refused.errors)")
            if arguments.last != "run" {  // (the existing --out is the refusal's subject)
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent(arguments.last!).path), "nothing written")
            }
        }
    }

    /// SQuAD v1.1 as distributed: a tiny encoder learns to find the answer word in a synthetic task (the word "q"
    /// somewhere in a context of other letters), scored with the official exact match and F1; predictions in the
    /// official layout, and a BertForQuestionAnswering folder written.
    func testFinetuningLearnsExtractiveQuestionAnswering() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let cpu = CPUBackend()
        let initial = try initialModel(in: folder, contextLength: 64, seed: 2)
        var draws = Draws(state: 5)
        func next(_ n: Int) -> Int { draws.next(n) }
        let letters = Array("abcdefghijklmnop")
        func split(_ count: Int, prefix: String) -> [String: Any] {
            let paragraphs = (0..<count).map { index -> [String: Any] in
                var words = (0..<(6 + next(10))).map { _ in String(letters[next(letters.count)]) }
                let position = next(words.count + 1)
                words.insert("q", at: position)
                let context = words.joined(separator: " ")
                return ["context": context, "qas": [["id": "\(prefix)\(index)", "question": "where is q", "answers": [["text": "q", "answer_start": 2 * position]]]]]
            }
            return ["version": "1.1", "data": [["title": "synthetic", "paragraphs": paragraphs]]]
        }
        let data = folder.appendingPathComponent("squad")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: split(160, prefix: "t")).write(to: data.appendingPathComponent("train-v1.1.json"))
        try JSONSerialization.data(withJSONObject: split(30, prefix: "d")).write(to: data.appendingPathComponent("dev-v1.1.json"))

        let result = try runner.run([
            "finetune", "--task", "squad", "--data", data.path, "--init", initial, "--out", "run", "--epochs", "4", "--batch-size", "8",
            "--lr", "3e-3", "--max-length", "32", "--doc-stride", "8", "--device", "cpu",
        ], in: folder)
        XCTAssertEqual(result.status, 0, result.errors + result.output)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run/metrics.json"))) as? [String: Any]
        let exactMatch = Double(((metrics?["dev"] as? [String: String])?["exact_match"]) ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(exactMatch, 80, result.output)
        let predictions = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("run/predictions-dev.json"))) as? [String: String]
        XCTAssertEqual(predictions?.count, 30)
        let (encoder, _) = try HuggingFaceEncoderImport.load(folder: folder.appendingPathComponent("run/model").path, dtype: .float32, backend: cpu)
        XCTAssertEqual(try HuggingFaceEncoderImport.loadTaskHead(folder: folder.appendingPathComponent("run/model").path, encoder: encoder)?.task, .questionAnswering)
    }
}
