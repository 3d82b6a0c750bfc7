import Foundation
import SLoPe
import SlopeData
import XCTest

/// `slope import`, and transformers folders given to `eval`, `generate` and `pretrain --init-from`, on the
/// fixtures of Tests/Fixtures/hf (tiny models without tokenizer files, so data comes as a .tokens shard).
final class ImportCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hf").path
    let cpu = CPUBackend()

    /// A shard of pseudo-random ids below the fixtures' vocabulary of 64.
    func writeShard(in folder: URL) throws -> String {
        var state: UInt32 = 7
        let tokens = (0..<4000).map { _ -> Int32 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Int32(state >> 26)
        }
        let path = folder.appendingPathComponent("ids.tokens").path
        try TokenShard.write(tokens, to: path)
        return path
    }

    func loss(in output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("loss") }.map(String.init)
    }

    /// The imported checkpoint and the folder itself score a shard alike; text is refused with a clear message,
    /// and so is evaluating an import without data, and writing over an existing checkpoint.
    func testImportEvalAndGenerate() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let shard = try writeShard(in: folder)
        let opt = Self.fixtures + "/opt"
        let stored = try runner.run(["import", opt, "--out", "bf16.safetensors"], in: folder)
        XCTAssertTrue(stored.output.contains("(stored bfloat16)") && stored.output.contains("parameters, bfloat16"),
                      "the stored type by default: \(stored.output)")
        // float32, as the folder is read for the CPU, so that both score alike.
        let imported = try runner.run(["import", opt, "--out", "opt.safetensors", "--dtype", "float32"], in: folder)
        XCTAssertEqual(imported.status, 0, imported.errors)
        XCTAssertTrue(imported.output.contains("opt model from") && imported.output.contains("parameters, float32"), imported.output)
        XCTAssertTrue(imported.output.contains("tokenizer    none slope reads"), imported.output)
        let again = try runner.run(["import", opt, "--out", "opt.safetensors"], in: folder)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.errors.contains("--force"), again.errors)

        let evaluation = ["--data", shard, "--device", "cpu", "--batches", "2", "--batch-size", "2", "--sequence-length", "16"]
        let fromCheckpoint = try runner.run(["eval", "opt.safetensors"] + evaluation, in: folder)
        let fromFolder = try runner.run(["eval", opt] + evaluation, in: folder)
        XCTAssertEqual(fromCheckpoint.status, 0, fromCheckpoint.errors)
        XCTAssertEqual(fromFolder.status, 0, fromFolder.errors)
        XCTAssertNotNil(loss(in: fromCheckpoint.output), fromCheckpoint.output)
        XCTAssertEqual(loss(in: fromCheckpoint.output), loss(in: fromFolder.output), "\(fromCheckpoint.output)\n\(fromFolder.output)")

        let noData = try runner.run(["eval", opt, "--device", "cpu"], in: folder)
        XCTAssertTrue(noData.errors.contains("no validation split of its own: pass --data"), noData.errors)
        let text = try runner.run(["generate", "opt.safetensors", "--device", "cpu", "--prompt", "hi"], in: folder)
        XCTAssertNotEqual(text.status, 0)
        XCTAssertTrue(text.errors.contains("no tokenizer slope reads"), text.errors)
        let notAModel = try runner.run(["import", folder.path, "--out", "x.safetensors"], in: folder)
        XCTAssertTrue(notAModel.errors.contains("not a transformers model folder"), notAModel.errors)
    }

    /// A trained SLoPe run (adapters attached) exported to a transformers folder reads back as the same model:
    /// the checkpoint and the exported folder score a shard alike, for the GPT and the LLaMA family.
    func testExportImportRoundTrip() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let shard = try writeShard(in: folder)
        for model in ["tiny", "tiny-llama"] {
            let trained = try runner.run(["pretrain", "--model", model, "--device", "cpu", "--steps", "4", "--batch-size", "2",
                                          "--sequence-length", "32", "--corpus-sentences", "300", "--eval-batches", "1",
                                          "--adapter-fraction", "0.5", "--out", model], in: folder)
            XCTAssertEqual(trained.status, 0, trained.errors)
            let checkpoint = model + "/checkpoint.safetensors"
            let exported = try runner.run(["export", checkpoint, "--out", model + "-hf"], in: folder)
            XCTAssertEqual(exported.status, 0, exported.errors)
            let evaluation = ["--data", shard, "--device", "cpu", "--batches", "2", "--batch-size", "2", "--sequence-length", "32"]
            let original = try runner.run(["eval", checkpoint] + evaluation, in: folder)
            let readBack = try runner.run(["eval", model + "-hf"] + evaluation, in: folder)
            XCTAssertEqual(readBack.status, 0, readBack.errors)
            XCTAssertNotNil(loss(in: original.output), original.output + original.errors)
            XCTAssertEqual(loss(in: original.output), loss(in: readBack.output), "\(model): \(original.output)\n\(readBack.output)")
        }
    }

    /// `pretrain --init-from`: dense, the run starts from the folder's weights (a step at a negligible learning rate
    /// leaves them as they were); SLoPe, the block linears are the folder's weights pruned 2:4 by magnitude.
    func testPretrainStartsFromImportedWeights() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let shard = try writeShard(in: folder)
        let gpt2 = Self.fixtures + "/gpt2"
        let (reference, _) = try HuggingFaceImport.load(folder: gpt2, dtype: .float32, backend: cpu)
        let run = ["pretrain", "--init-from", gpt2, "--data", shard, "--device", "cpu", "--steps", "1", "--batch-size", "2",
                   "--sequence-length", "16", "--lr", "1e-12", "--warmup", "0", "--weight-decay", "0", "--eval-batches", "1",
                   "--adapter-fraction", "0"]
        for dense in [true, false] {
            let out = dense ? "dense" : "sparse"
            let result = try runner.run(run + ["--out", out] + (dense ? ["--dense"] : []), in: folder)
            XCTAssertEqual(result.status, 0, result.errors)
            XCTAssertTrue(result.output.contains("gpt2 model from"), result.output)
            let (model, _) = try Checkpoint.loadModel(SafeTensors.read(folder.appendingPathComponent(out + "/checkpoint.safetensors").path), backend: cpu)
            let original = Dictionary(uniqueKeysWithValues: reference.parameters.map { ($0.name, $0) })
            for parameter in model.parameters {
                let (actual, expected) = (try cpu.floats(parameter.value), try cpu.floats(original[parameter.name]!.value))
                XCTAssertEqual(zip(actual, expected).map { abs($0 - $1) }.max() ?? 1, 0, accuracy: 1e-6, "\(out): \(parameter.name)")
            }
            XCTAssertEqual(model.sparseWeights.isEmpty, dense)
            let linears = Dictionary(uniqueKeysWithValues: reference.blockProjections.compactMap { ($0.module as? Linear).map { ($0.weight.name, $0) } })
            for weight in model.sparseWeights {
                let pruned = try cpu.floats(weight.prunedDense()), full = try cpu.floats(linears[weight.name]!.weight.value)
                XCTAssertEqual(pruned.filter { $0 == 0 }.count, pruned.count / 2, "\(weight.name): half pruned")
                for group in stride(from: 0, to: full.count, by: 4) {
                    let kept = (group..<(group + 4)).filter { pruned[$0] != 0 }
                    XCTAssertEqual(kept.map { pruned[$0] }, kept.map { full[$0] }, "\(weight.name): kept values are the originals")
                    let smallestKept = kept.map { abs(full[$0]) }.min() ?? 0
                    let largestDropped = (group..<(group + 4)).filter { pruned[$0] == 0 }.map { abs(full[$0]) }.max() ?? 0
                    XCTAssertGreaterThanOrEqual(smallestKept, largestDropped, "\(weight.name): the largest magnitudes are kept")
                }
            }
        }
        let conflicting = try runner.run(run + ["--out", "x", "--model", "gpt2"], in: folder)
        XCTAssertTrue(conflicting.errors.contains("leave out --model"), conflicting.errors)
    }
}
