import Foundation
import SLoPe
import XCTest

/// `slope export` writes a folder transformers uses as it is: weights, config with the real end-of-text id,
/// tokenizer files, generation settings, and with `--adapter peft` the 2:4 base plus a PEFT LoRA adapter.
/// (bench/pytorch/check_export.py runs AutoTokenizer + pipeline on such a folder where transformers is installed.)
final class ExportCommandTests: XCTestCase {
    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    func testExportFilesTokenizerAndPEFTAdapter() throws {
        let runner = try CommandRunner()
        let folder = try CommandRunner.temporaryFolder(self)
        let trained = try runner.run(["pretrain", "--device", "cpu", "--steps", "4", "--batch-size", "2", "--sequence-length", "32",
                                      "--corpus-sentences", "300", "--eval-batches", "1", "--adapter-fraction", "0.5", "--out", "run"], in: folder)
        XCTAssertEqual(trained.status, 0, trained.errors)
        let folded = try runner.run(["export", "run/checkpoint.safetensors", "--out", "hf"], in: folder)
        XCTAssertEqual(folded.status, 0, folded.errors)
        XCTAssertTrue(folded.output.contains("adapters folded in") && folded.output.contains("no longer 2:4"), folded.output)
        let hf = folder.appendingPathComponent("hf")
        for name in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: hf.appendingPathComponent(name).path), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: hf.appendingPathComponent("adapter_config.json").path))
        let config = try json(hf.appendingPathComponent("config.json"))
        XCTAssertEqual(config["eos_token_id"] as? Int, 256, "the byte tokenizer's end of text, not the last id by accident")
        XCTAssertEqual(try json(hf.appendingPathComponent("generation_config.json"))["eos_token_id"] as? Int, 256)
        XCTAssertEqual(try json(hf.appendingPathComponent("tokenizer_config.json"))["eos_token"] as? String, "<|endoftext|>")
        let tokenizer = try json(hf.appendingPathComponent("tokenizer.json"))
        let vocabulary = (tokenizer["model"] as? [String: Any])?["vocab"] as? [String: Int] ?? [:]
        XCTAssertEqual(Set(vocabulary.values), Set(0..<256), "one token per byte, id = byte")
        XCTAssertEqual(vocabulary["Ġ"], 32, "GPT-2's byte-level alphabet: space is Ġ")
        let added = tokenizer["added_tokens"] as? [[String: Any]] ?? []
        XCTAssertEqual(added.first?["id"] as? Int, 256)

        let peft = try runner.run(["export", "run/checkpoint.safetensors", "--out", "peft", "--adapter", "peft"], in: folder)
        XCTAssertEqual(peft.status, 0, peft.errors)
        let peftFolder = folder.appendingPathComponent("peft")
        let adapterConfig = try json(peftFolder.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(adapterConfig["peft_type"] as? String, "LORA")
        XCTAssertEqual(adapterConfig["r"] as? Int, 16)
        XCTAssertEqual((adapterConfig["target_modules"] as? [String])?.count, 24, "4 blocks × 6 linears")
        let adapterFile = try SafeTensors.read(peftFolder.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertEqual(adapterFile.tensors.count, 48)
        XCTAssertEqual(adapterFile.tensors["base_model.model.model.decoder.layers.0.fc1.lora_A.weight"]?.shape, [16, 128])
        XCTAssertEqual(adapterFile.tensors["base_model.model.model.decoder.layers.0.fc1.lora_B.weight"]?.shape, [512, 16])
        // The base keeps exactly two zeros in every group of four along the input features.
        let cpu = CPUBackend()
        let base = try SafeTensors.read(peftFolder.appendingPathComponent("model.safetensors").path)
        let weight = try cpu.floats(base.tensor("model.decoder.layers.0.fc1.weight", backend: cpu))
        XCTAssertTrue(stride(from: 0, to: weight.count, by: 4).allSatisfy { g in (g..<(g + 4)).filter { weight[$0] == 0 }.count == 2 })
        let foldedWeight = try cpu.floats(SafeTensors.read(hf.appendingPathComponent("model.safetensors").path)
            .tensor("model.decoder.layers.0.fc1.weight", backend: cpu))
        XCTAssertNotEqual(foldedWeight, weight, "folding changes the weights")
        // slope does not read an adapter beside the weights, so it refuses such a folder rather than ignore the adapter.
        let reimport = try runner.run(["import", "peft", "--out", "x.safetensors"], in: folder)
        XCTAssertTrue(reimport.errors.contains("PEFT adapter"), reimport.errors)
    }
}
