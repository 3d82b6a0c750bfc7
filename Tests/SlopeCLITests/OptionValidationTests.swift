import Foundation
import XCTest

/// Every option is checked before anything runs: a clear message naming the option and the value, exit status
/// 64 (usage), nothing written.
final class OptionValidationTests: XCTestCase {
    func assertRefused(
        _ arguments: [String], environment: [String: String] = [:], mentions words: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let result = try runner.run(arguments, in: folder, environment: environment)
        XCTAssertEqual(result.status, 64, "\(arguments): \(result.errors)", file: file, line: line)
        for word in words { XCTAssertTrue(result.errors.contains(word), "'\(word)' in: \(result.errors)", file: file, line: line) }
        XCTAssertFalse(result.errors.contains("Fatal error"), result.errors, file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "nothing written", file: file, line: line)
    }

    func testPretrainOptions() throws {
        try assertRefused(["pretrain", "--log-every", "0"], mentions: ["--log-every must be at least 1, not 0"])
        try assertRefused(["pretrain", "--corpus-sentences=-5"], mentions: ["--corpus-sentences must be at least 1, not -5"])
        try assertRefused(["pretrain", "--steps=-1"], mentions: ["--steps must be at least 1, not -1"])
        try assertRefused(["pretrain", "--steps", "-1"], mentions: ["--steps must be at least 1, not -1"])
        try assertRefused(["pretrain", "--lr", "inf"], mentions: ["--lr must be a positive finite number, not inf"])
        try assertRefused(["pretrain", "--weight-decay", "nan"], mentions: ["--weight-decay must be a finite number"])
        try assertRefused(["pretrain", "--optimizer-state", "float16"], mentions: ["--optimizer-state must be float32 or bfloat16"])
        try assertRefused(["pretrain", "--validation-fraction", "1.5"], mentions: ["--validation-fraction must be between 0 and 1"])
        try assertRefused(["pretrain", "--beta2", "1"], mentions: ["--beta1 and --beta2 must be in [0, 1)"])
        try assertRefused(["pretrain", "--eps", "0"], mentions: ["--eps must be a positive finite number"])
        try assertRefused(["pretrain", "--sampling", "shuffled"], mentions: ["--sampling"])
        try assertRefused(["pretrain", "--bf16-rounding", "up"], mentions: ["--bf16-rounding"])
        try assertRefused(["pretrain", "--optimizer", "sgd"], mentions: ["--optimizer", "sgd"])
        try assertRefused(["pretrain", "--init-from", "hf", "--vocab-size", "100"], mentions: ["leave out --model and --vocab-size"])
        try assertRefused(["pretrain", "--unstructured-sparsity", "0.5"], mentions: ["--unstructured-sparsity needs --simulate"])
        try assertRefused(["pretrain", "--prune-along", "output"], mentions: ["--prune-along output needs --simulate"])
        try assertRefused(["pretrain", "--unstructured-sparsity", "1.5", "--simulate"], mentions: ["--unstructured-sparsity must be in [0, 1), not 1.5"])
        try assertRefused(["pretrain", "--unstructured-sparsity", "0.5", "--prune-along", "output", "--simulate"], mentions: ["give one"])
        try assertRefused(["pretrain", "--prune-along", "diagonal"], mentions: ["--prune-along"])
        try assertRefused(["pretrain", "--model", "tiny-bert", "--masking", "sometimes"], mentions: ["--masking"])
        try assertRefused(["pretrain", "--model", "tiny-bert", "--sentences-per-document", "0"], mentions: ["--sentences-per-document must be at least 1"])
        try assertRefused(["pretrain", "--model", "tiny-bert", "--dropout", "1"], mentions: ["--dropout must be in [0, 1), not 1"])
        try assertRefused(["pretrain", "--model", "tiny-bert", "--attention-dropout=-0.1"], mentions: ["--attention-dropout must be in [0, 1), not -0.1"])
        try assertRefused(["pretrain", "--model", "tiny-bert", "--device", "cpu"], environment: ["SLOPE_KEEP_PADDING": "yes"],
                          mentions: ["SLOPE_KEEP_PADDING must be 0", "not 'yes'"])
        try assertRefused(["export", "run/checkpoint.safetensors", "--out", "hf", "--adapter", "merge"], mentions: ["--adapter"])
        try assertRefused(["import", "hf", "--out", "model.bin"], mentions: ["--out must name a .safetensors file"])
        try assertRefused(["import", "hf", "--out", "m.safetensors", "--dtype", "float64"], mentions: ["--dtype must be float32, bfloat16 or float16"])
    }

    func testGenerateAndEvalOptions() throws {
        try assertRefused(["generate", "missing.safetensors", "--max-tokens=-5"], mentions: ["--max-tokens must be at least 1, not -5"])
        try assertRefused(["generate", "missing.safetensors", "--max-tokens", "-5"], mentions: ["--max-tokens must be at least 1, not -5"])
        try assertRefused(["generate", "missing.safetensors", "--temperature", "inf"], mentions: ["--temperature must be a finite number"])
        try assertRefused(["eval", "missing.safetensors", "--batches", "0"], mentions: ["--batches must be at least 1, not 0"])
        try assertRefused(["generate", "missing.safetensors", "--batch", "0"], mentions: ["--batch must be at least 1, not 0"])
        try assertRefused(["generate", "missing.safetensors", "--chat-template", "t.jinja"], mentions: ["--chat-template goes with --chat"])
        try assertRefused(["finetune", "--task", "sst2", "--data", "d", "--init", "m", "--out", "o", "--lr", "0"], mentions: ["--lr must be a positive"])
        try assertRefused(["finetune", "--task", "squad", "--data", "d", "--init", "m", "--out", "o", "--doc-stride", "0"], mentions: ["--doc-stride"])
        try assertRefused(["finetune", "--task", "sst2", "--data", "d", "--init", "m", "--out", "o", "--attention-dropout", "1.5"],
                          mentions: ["--attention-dropout must be in [0, 1), not 1.5"])
    }

    func testServeAndInferenceBenchOptions() throws {
        try assertRefused(["serve", "missing.safetensors", "--port", "70000"], mentions: ["--port must be a TCP port (0 … 65535), not 70000"])
        try assertRefused(["serve", "missing.safetensors", "--slots", "0"], mentions: ["--slots must be at least 1"])
        try assertRefused(["serve", "missing.safetensors", "--context", "1"], mentions: ["--context must be at least 2"])
        try assertRefused(["serve", "missing.safetensors", "--max-tokens", "0"], mentions: ["--max-tokens must be at least 1"])
        let templates = try CommandRunner.temporaryFolder(self)
        let broken = templates.appendingPathComponent("broken.jinja")
        try Data("{% for m in messages %}{{ m.content }}".utf8).write(to: broken)
        try assertRefused(["serve", "missing.safetensors", "--chat-template", broken.path], mentions: ["--chat-template", "broken.jinja", "{% endfor %}"])
        try assertRefused(["serve", "missing.safetensors", "--chat-template", templates.appendingPathComponent("absent.jinja").path],
                          mentions: ["cannot read the chat template file"])
        try assertRefused(["bench", "generate", "--batches", "1,0"], mentions: ["--batches: '0' is not a batch size ≥ 1"])
        try assertRefused(["bench", "generate", "--modes", "dense,fast"], mentions: ["--modes: 'fast' is not one of dense, merged, unmerged"])
        try assertRefused(["bench", "generate", "--new-tokens", "1"], mentions: ["--new-tokens ≥ 2"])
        try assertRefused(["bench", "generate", "--device", "cpu"], environment: ["SLOPE_STACK_PROJECTIONS": "yes"],
                          mentions: ["SLOPE_STACK_PROJECTIONS must be 0", "not 'yes'"])
        try assertRefused(["bench", "serve", "--clients", "0"], mentions: ["--clients and --repeats must be at least 1"])
    }
}

/// Sizes given on the command line that could never fit are refused before allocating, with both sizes.
final class CommandLineSizeTests: XCTestCase {
    func testImpossibleSizes() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let bench = try runner.run(["bench", "linear", "--shapes", "100000000x100000000x100000000"], in: folder)
        XCTAssertNotEqual(bench.status, 0)
        XCTAssertTrue(bench.errors.contains("benchmarking the 100000000×100000000×100000000 layer needs") && bench.errors.contains("in all"),
                      bench.errors)
        let vocabulary = try runner.run(["pretrain", "--device", "cpu", "--vocab-size", "1000000000000", "--out", "run"], in: folder)
        XCTAssertNotEqual(vocabulary.status, 0)
        XCTAssertTrue(vocabulary.errors.contains("needs about") && vocabulary.errors.contains("in all"), vocabulary.errors)
        for result in [bench, vocabulary] { XCTAssertFalse(result.errors.contains("Fatal error"), result.errors) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("run").path), "a failed start leaves no run folder")
    }
}
