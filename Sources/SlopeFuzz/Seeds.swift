import FoundationEssentials
import SLoPe
import SlopeData

/// Valid inputs for each fuzz target, made by slope's own writers (fuzz/corpus/ holds them, plus damaged ones).
enum Seeds {
    static func write(to folder: String) throws {
        func folderFor(_ target: FuzzTarget) throws -> String {
            let path = folder + "/" + target.rawValue
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return path
        }
        let cpu = CPUBackend()
        // A whole (very small) SLoPe checkpoint: a safetensors file with a state (and the state alone).
        let tokens = (0..<1024).map { Int32($0 % 32) }
        let configuration = ModelConfiguration(
            family: .gpt, vocabularySize: 32, contextLength: 16, layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32)
        let run = try Trainer(
            model: TransformerModel(configuration: configuration, backend: cpu, seed: 0),
            options: TrainingOptions(steps: 1, batchSize: 2, sequenceLength: 8, adapterFraction: 0), trainTokens: tokens, validationTokens: tokens)
        _ = try run.trainStep()  // so that the optimizer's moments exist and are saved
        let checkpoint = try folderFor(.safetensors) + "/small-checkpoint.safetensors"
        try Checkpoint.save(run, to: checkpoint)
        let small = try SafeTensors.record("w", cpu.tensor([1, 2, 3, 4] as [Float], shape: [2, 2], dtype: .bfloat16), backend: cpu)
        try SafeTensors.write([small], to: try folderFor(.safetensors) + "/one-tensor.safetensors")
        let json = try SafeTensors.read(checkpoint).metadata["slope.state"] ?? ""
        try Data(json.utf8).write(to: URL(fileURLWithPath: try folderFor(.checkpointState) + "/tiny.json"))
        // Token shards with 2- and 4-byte tokens.
        try TokenShard.write([1, 2, 3, 256], to: try folderFor(.tokens) + "/short.tokens")
        try TokenShard.write([70_000, 5, -1], to: try folderFor(.tokens) + "/wide.tokens")
        // Model configurations.
        let encoder = JSONEncoder()
        for name in ["tiny", "tiny-llama", "opt-125m"] {
            try encoder.encode(try ModelConfiguration.named(name)).write(to: URL(fileURLWithPath: try folderFor(.modelJSON) + "/\(name).json"))
        }
        // Tokenizers: the 256 byte symbols and three merges, as tokenizer.json and as vocab.json + merges.txt.
        var vocabulary: [String: Int32] = [:]
        for (byte, symbol) in BPETokenizer.byteToCharacter.enumerated() { vocabulary[symbol] = Int32(byte) }
        vocabulary["Ġt"] = 256
        vocabulary["he"] = 257
        vocabulary["Ġthe"] = 258
        let vocab = String(decoding: try encoder.encode(vocabulary), as: UTF8.self)
        try Data(#"{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "model": {"type": "BPE", "vocab": \#(vocab), "merges": ["Ġ t", "h e", ["Ġt", "he"]]}}"#.utf8)
            .write(to: URL(fileURLWithPath: try folderFor(.tokenizerJSON) + "/bytes-and-merges.json"))
        try Data((vocab + "\0#version: 0.2\nĠ t\nh e\nĠt he\n").utf8)
            .write(to: URL(fileURLWithPath: try folderFor(.vocabMerges) + "/bytes-and-merges.txt"))
        print("seed inputs written under \(folder)/<target>/")
    }
}
