import Foundation
import SLoPe
import SlopeData
import XCTest

/// `slope pretrain --model tiny-bert` as a user runs it: BERT pretraining of a SLoPe encoder on the embedded corpus
/// (a vocabulary made from it), resumed, exported as a transformers folder, and fine-tuned with its 2:4 masks kept.
final class EncoderPretrainCommandTests: XCTestCase {
    func testPretrainResumeExportAndFinetuneAnEncoder() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let common = ["--model", "tiny-bert", "--batch-size", "4", "--sequence-length", "32", "--corpus-sentences", "400", "--device", "cpu",
                      "--out", "bert", "--eval-interval", "4", "--adapter-fraction", "0.25"]
        let first = try runner.run(["pretrain"] + common + ["--steps", "4"], in: folder)
        XCTAssertEqual(first.status, 0, first.errors + first.output)
        for expected in ["(encoder, 2 layers, hidden 64", "made from the text", "static masking, next-sentence prediction", "LAMB β1 0.9 β2 0.999 ε 1e-06",
                         "polynomial", "12 of 12 block linears sparse", "step 4: validation loss",
                         "step 4: lazy low-rank adapters attached (rank 16) for the last 1 steps"] {
            XCTAssertTrue(first.output.contains(expected), "\(expected) in:\n\(first.output)")
        }
        let run = folder.appendingPathComponent("bert")
        for file in ["checkpoint.safetensors", "tokenizer.json", "metrics.jsonl", "loss.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), file)
        }
        let metrics = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"mlm_loss\"") && metrics.contains("\"nsp_loss\""), metrics)

        // Resumed and extended (the padding kept in the blocks this time: the slower form); options of the run cannot change.
        let resumed = try runner.run(
            ["pretrain", "--out", "bert", "--resume", "--steps", "8", "--device", "cpu", "--recompute-activations"], in: folder,
            environment: ["SLOPE_KEEP_PADDING": "1"])
        XCTAssertEqual(resumed.status, 0, resumed.errors + resumed.output)
        XCTAssertTrue(resumed.output.contains("activations recomputed"), resumed.output)
        XCTAssertTrue(resumed.output.contains("padding kept (SLOPE_KEEP_PADDING=1)"), resumed.output)
        XCTAssertFalse(first.output.contains("padding kept"), first.output)
        XCTAssertTrue(resumed.output.contains("resuming bert/checkpoint.safetensors at step 4 of 8"), resumed.output)
        XCTAssertTrue(resumed.output.contains("step 8: validation loss"), resumed.output)
        XCTAssertTrue(resumed.output.contains("tokenized documents read back from bert/data"), resumed.output)
        let state = try EncoderCheckpoint.state(of: SafeTensors.read(run.appendingPathComponent("checkpoint.safetensors").path))
        XCTAssertEqual(state.step, 8)
        XCTAssertTrue(state.adaptersAttached)

        // A transformers folder with the run's tokenizer.
        let exported = try runner.run(["export", "bert/checkpoint.safetensors", "--out", "hf"], in: folder)
        XCTAssertEqual(exported.status, 0, exported.errors + exported.output)
        XCTAssertTrue(exported.output.contains("BertForPreTraining"), exported.output)
        let (encoder, lacking) = try HuggingFaceEncoderImport.load(folder: folder.appendingPathComponent("hf").path, dtype: .float32, backend: CPUBackend())
        XCTAssertEqual(lacking, [], "the pretraining heads are written too")
        XCTAssertEqual(encoder.configuration.vocabularySize, try WordPieceTokenizer(tokenizerJSON: run.appendingPathComponent("tokenizer.json").path).vocabularySize)

        // Fine-tuning the checkpoint keeps its masks: a synthetic SST-2 over the corpus's nouns.
        let (positive, negative) = (["fox", "dog", "cat", "bird", "horse", "mouse"], ["river", "stone", "tree", "cloud", "ship", "lamp"])
        var state64: UInt64 = 7
        func next(_ n: Int) -> Int {
            state64 = state64 &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state64 >> 33) % n
        }
        func split(_ count: Int) -> String {
            "sentence\tlabel\n" + (0..<count).map { _ in
                let good = next(2) == 1, words = good ? positive : negative
                return (0..<(3 + next(4))).map { _ in words[next(words.count)] }.joined(separator: " ") + "\t" + (good ? "1" : "0")
            }.joined(separator: "\n") + "\n"
        }
        let data = folder.appendingPathComponent("SST-2")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try split(96).write(to: data.appendingPathComponent("train.tsv"), atomically: true, encoding: .utf8)
        try split(40).write(to: data.appendingPathComponent("dev.tsv"), atomically: true, encoding: .utf8)
        let tuned = try runner.run([
            "finetune", "--task", "sst2", "--data", data.path, "--init", "bert/checkpoint.safetensors", "--out", "sst2", "--epochs", "3",
            "--batch-size", "8", "--lr", "2e-3", "--max-length", "16", "--device", "cpu",
        ], in: folder)
        XCTAssertEqual(tuned.status, 0, tuned.errors + tuned.output)
        XCTAssertTrue(tuned.output.contains("12 SLoPe layers keep their N:M masks"), tuned.output)
        let scores = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("sst2/metrics.json"))) as? [String: Any]
        XCTAssertGreaterThanOrEqual(Double(((scores?["dev"] as? [String: String])?["accuracy"]) ?? "") ?? 0, 0.9, tuned.output)

        // Refusals: decoder-only options, a decoder command given the encoder checkpoint, text of one document.
        try "One sentence.\nAnother one.\n".write(to: folder.appendingPathComponent("one.txt"), atomically: true, encoding: .utf8)
        let refusals: [([String], String)] = [
            (["pretrain", "--model", "tiny-bert", "--sampling", "random", "--out", "a"], "--sampling applies to decoders only"),
            (["pretrain", "--model", "tiny-bert", "--data", "one.txt", "--out", "b", "--device", "cpu"], "holds 1 document"),
            (["pretrain", "--model", "tiny-bert", "--tokenizer", "vocab.txt", "--out", "c", "--device", "cpu"], "WordPiece tokenizer.json"),
            (["pretrain", "--model", "tiny-bert", "--max-predictions", "0", "--out", "d"], "--max-predictions must be at least 1"),
            (["eval", "bert/checkpoint.safetensors", "--device", "cpu"], "BERT-style encoder"),
            (["pretrain", "--out", "bert", "--resume", "--masking", "dynamic"], "--masking cannot change when resuming"),
        ]
        for (arguments, message) in refusals {
            let refused = try runner.run(arguments, in: folder)
            XCTAssertNotEqual(refused.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(refused.errors.contains(message), "\(arguments): \(refused.errors)")
        }
        for name in ["a", "b", "c", "d"] { XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), "no run folder left: \(name)") }

        // An encoder's adapters fold into its weights (no PEFT export); a checkpoint whose run lost its tokenizer cannot
        // be fine-tuned (its token ids would mean nothing).
        let peft = try runner.run(["export", "bert/checkpoint.safetensors", "--out", "hf-peft", "--adapter", "peft"], in: folder)
        XCTAssertNotEqual(peft.status, 0)
        XCTAssertTrue(peft.errors.contains("--adapter peft is for decoders"), peft.errors)
        try FileManager.default.moveItem(at: run.appendingPathComponent("tokenizer.json"), to: run.appendingPathComponent("tokenizer.moved"))
        let lost = try runner.run([
            "finetune", "--task", "sst2", "--data", data.path, "--init", "bert/checkpoint.safetensors", "--out", "sst2-lost", "--device", "cpu",
        ], in: folder)
        XCTAssertNotEqual(lost.status, 0)
        XCTAssertTrue(lost.errors.contains("run folder has no tokenizer.json"), lost.errors)
    }
}
