import ArgumentParser
import Foundation
@testable import SlopeCLI
import XCTest

/// `slope pretrain` end to end on the CPU (the tiny model, a few steps).
final class PretrainCommandTests: XCTestCase {
    let tinyRun = ["pretrain", "--device", "cpu", "--steps", "3", "--batch-size", "2", "--sequence-length", "32",
                   "--corpus-sentences", "400", "--log-every", "1", "--eval-batches", "1"]

    /// `--no-final-checkpoint` trains, logs and plots but leaves no checkpoint, and says so in the summary.
    func testNoFinalCheckpointWritesNone() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let result = try runner.run(tinyRun + ["--out", "run", "--no-final-checkpoint"], in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.output.contains("not written (--no-final-checkpoint)"), result.output)
        XCTAssertFalse(result.output.contains("Next: slope eval"), "no checkpoint to evaluate")
        let run = folder.appendingPathComponent("run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path))
        let metrics = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").filter { $0.contains("\"loss\"") }.count, 3, "one record per step")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("loss.svg").path))
    }

    /// The recipe options reach the run: windows instead of the default random sampling, AdamW's β and ε, weight
    /// decay on matrices only, bf16 weights rounded to nearest instead of stochastically.
    func testRecipeOptionsTrain() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let result = try runner.run(tinyRun + ["--out", "run", "--sampling", "windows", "--beta2", "0.99", "--eps", "1e-6",
                                               "--weight-decay-on", "matrices", "--dtype", "bfloat16", "--bf16-rounding", "nearest",
                                               "--no-final-checkpoint"], in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        for expected in ["shuffled windows", "β2 0.99", "ε 1e-06", "on matrices and embeddings", "bf16 weights rounded to nearest"] {
            XCTAssertTrue(result.output.contains(expected), "\(expected): \(result.output)")
        }
        let defaults = try runner.run(tinyRun + ["--out", "defaults", "--dtype", "bfloat16", "--no-final-checkpoint"], in: folder)
        XCTAssertEqual(defaults.status, 0, defaults.errors)
        XCTAssertTrue(defaults.output.contains("random sampling") && defaults.output.contains("bf16 weights rounded stochastically"), defaults.output)
    }

    /// A SentencePiece-style tokenizer.json (LLaMA 2's layout: byte fallback, ▁ for spaces, <s> first) trains a model
    /// whose checkpoint `slope generate` reads back, decoding through the same tokenizer.
    func testSentencePieceTokenizerTrainsAndGenerates() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let tokenizer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/llama2-style-bpe.json").path
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. Numbers 1234567 and dates 2026-12-06.\n", count: 120)
        try text.write(to: folder.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        let result = try runner.run(["pretrain", "--device", "cpu", "--steps", "3", "--batch-size", "2", "--sequence-length", "32",
                                     "--data", "text.txt", "--tokenizer", tokenizer, "--log-every", "1", "--eval-batches", "1",
                                     "--out", "run"], in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        let generated = try runner.run(["generate", folder.appendingPathComponent("run/checkpoint.safetensors").path, "--device", "cpu",
                                        "--prompt", "The quick", "--max-tokens", "8", "--temperature", "0"], in: folder)
        XCTAssertEqual(generated.status, 0, generated.errors)
        XCTAssertTrue(generated.output.contains("The quick"), "the prompt decodes back to its text: \(generated.output)")
        XCTAssertFalse(generated.output.contains("▁") || generated.output.contains("<0x"), "▁ and byte tokens decode: \(generated.output)")
    }

    /// The default run ends with a checkpoint that `slope eval` reads.
    func testFinalCheckpointIsWrittenByDefault() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let result = try runner.run(tinyRun + ["--out", "run", "--optimizer-state", "bfloat16"], in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.output.contains("bfloat16 optimizer state"), result.output)
        let checkpoint = folder.appendingPathComponent("run/checkpoint.safetensors").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))
        let evaluation = try runner.run(["eval", checkpoint, "--device", "cpu", "--batches", "1"], in: folder)
        XCTAssertEqual(evaluation.status, 0, evaluation.errors)
        XCTAssertTrue(evaluation.output.contains("perplexity"), evaluation.output)

        // Several sequences at once: a prompts file (greedy: each line's continuation is what it gets alone), and
        // --batch samples of one prompt.
        try "The cat\n\nA dog\nThe cat\n".write(to: folder.appendingPathComponent("prompts.txt"), atomically: true, encoding: .utf8)
        let batched = try runner.run(["generate", checkpoint, "--device", "cpu", "--prompts", "prompts.txt", "--max-tokens", "6", "--temperature", "0"],
                                     in: folder)
        XCTAssertEqual(batched.status, 0, batched.errors)
        let lines = batched.output.split(separator: "\n").map(String.init)
        let first = try XCTUnwrap(lines.first { $0.hasPrefix("[1] The cat") }), third = try XCTUnwrap(lines.first { $0.hasPrefix("[3] The cat") })
        XCTAssertEqual(first.dropFirst(3), third.dropFirst(3), "the same prompt, greedy, continues alike: \(batched.output)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("[2] A dog") }, batched.output)
        XCTAssertTrue(batched.output.contains("for 3 sequences (3 at once, SLoPe layers merged): prefill"), batched.output)
        let alone = try runner.run(["generate", checkpoint, "--device", "cpu", "--prompt", "The cat", "--max-tokens", "6", "--temperature", "0"],
                                   in: folder)
        XCTAssertTrue(alone.output.hasPrefix(String(first.dropFirst(4))), "alone: \(alone.output) batched: \(first)")
        let samples = try runner.run(["generate", checkpoint, "--device", "cpu", "--batch", "2", "--max-tokens", "4"], in: folder)
        XCTAssertEqual(samples.status, 0, samples.errors)
        XCTAssertTrue(samples.output.contains("[2] The"), samples.output)
        // --chat: the prompt as a user's message through a chat template (here over the byte tokenizer: `|` ends a turn);
        // the reply is what the rendered prompt continues to, cut at the end of turn.
        try #"{"eos_token": "|", "chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}>"}"#.write(
            to: folder.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let chatted = try runner.run(["generate", checkpoint, "--device", "cpu", "--chat", "--chat-template", "tokenizer_config.json", "--prompt", "hi",
                                      "--max-tokens", "12", "--temperature", "0"], in: folder)
        XCTAssertEqual(chatted.status, 0, chatted.errors)
        let raw = try runner.run(["generate", checkpoint, "--device", "cpu", "--prompt", "<user>hi|>", "--max-tokens", "12", "--temperature", "0"], in: folder)
        let continued = String(raw.output.split(separator: "\n", omittingEmptySubsequences: false)[0].dropFirst("<user>hi|>".count))
        let reply = chatted.output.split(separator: "\n", omittingEmptySubsequences: false)[1]
        XCTAssertEqual(String(reply), String(continued.prefix { $0 != "|" }), "chat: \(chatted.output) raw: \(raw.output)")
        let noTemplate = try runner.run(["generate", checkpoint, "--device", "cpu", "--chat"], in: folder)
        XCTAssertTrue(noTemplate.errors.contains("has no chat template"), noTemplate.errors)
        try "\n  \n".write(to: folder.appendingPathComponent("blank.txt"), atomically: true, encoding: .utf8)
        for (arguments, message) in [(["--prompts", "nothing.txt"], "cannot read the prompts file nothing.txt"), (["--batch", "0"], "--batch must be at least 1"),
                                     (["--prompts", "blank.txt"], "blank.txt holds no prompt (one per line)")] {
            let refused = try runner.run(["generate", checkpoint, "--device", "cpu"] + arguments, in: folder)
            XCTAssertNotEqual(refused.status, 0)
            XCTAssertTrue(refused.errors.contains(message), refused.errors)
        }
    }
}

/// The pieces of `slope pretrain` that a short run cannot reach.
final class PretrainStopTests: XCTestCase {
    /// A non-finite validation loss stops the run through a checkpoint, as a non-finite training loss does.
    func testANonFiniteValidationLossStopsWithACheckpoint() throws {
        let command = try PretrainCommand.parse([])
        var saved: [String] = []
        XCTAssertNoThrow(try command.stopUnlessFinite(2.5, step: 3) { saved.append($0) })
        XCTAssertEqual(saved, [])
        for value in [Double.nan, .infinity] {
            XCTAssertThrowsError(try command.stopUnlessFinite(value, step: 3) { saved.append($0) }) { error in
                XCTAssertEqual((error as? ExitCode)?.rawValue, 1, "\(error)")
            }
        }
        XCTAssertEqual(saved, ["state at the non-finite validation loss", "state at the non-finite validation loss"])
    }
}
