import FoundationEssentials
import SLoPe
import SlopeTestSupport
import XCTest

/// Sampling, generation with the KV cache, and the Hugging Face export.
final class InferenceTests: XCTestCase {
    let cpu = CPUBackend()

    func testSamplerFilters() throws {
        let logits: [Float] = [log(0.1), log(0.2), log(0.3), log(0.4)]
        let plain = try TokenSampler(temperature: 1).distribution(logits)
        assertClose(plain, [0.1, 0.2, 0.3, 0.4], rtol: 1e-6)
        assertClose(try TokenSampler(temperature: 1, topK: 2).distribution(logits), [0, 0, 3.0 / 7, 4.0 / 7], rtol: 1e-6)
        // Top-p 0.6: 0.4 alone is below it, 0.4 + 0.3 reaches it.
        assertClose(try TokenSampler(temperature: 1, topP: 0.6).distribution(logits), [0, 0, 3.0 / 7, 4.0 / 7], rtol: 1e-6)
        assertClose(try TokenSampler(temperature: 0).distribution(logits), [0, 0, 0, 1])
        // Temperature 0.5 squares the probabilities before normalising.
        assertClose(try TokenSampler(temperature: 0.5).distribution(logits), [0.01, 0.04, 0.09, 0.16].map { $0 / 0.3 }, rtol: 1e-6)
        var sampler = try TokenSampler(temperature: 1, seed: 9)
        var counts = [0, 0, 0, 0]
        for _ in 0..<20_000 { counts[Int(sampler.sample(logits))] += 1 }
        assertClose(counts.map { Double($0) / 20_000 }, [0.1, 0.2, 0.3, 0.4], rtol: 0, atol: 0.015)
        XCTAssertThrowsError(try TokenSampler(temperature: -1))
        XCTAssertThrowsError(try TokenSampler(topP: 0))
    }

    func testGreedyGenerationFollowsTheFullForward() throws {
        let configuration = ModelConfiguration(
            family: .llama, vocabularySize: 13, contextLength: 16, layers: 2, hiddenSize: 16, heads: 4, keyValueHeads: 2, intermediateSize: 32)
        let model = try TransformerModel(configuration: configuration, backend: cpu, seed: 3)
        let sampler = try TokenSampler(temperature: 0)
        let prompt: [Int32] = [1, 2, 3]
        let generated = try model.generate(prompt: prompt, maxTokens: 6, sampler: sampler)
        XCTAssertEqual(generated.count, 6)
        // Without a cache: argmax of the last row, one token at a time.
        var sequence = prompt
        for _ in 0..<6 {
            let logits = try cpu.floats(model.logits(tokens: cpu.tensor(sequence, shape: [sequence.count]), batch: 1, sequence: sequence.count))
            let last = Array(logits.suffix(13))
            sequence.append(Int32(last.indices.max { last[$0] < last[$1] }!))
        }
        XCTAssertEqual(generated, Array(sequence.dropFirst(3)))
        // Generation stops when the context is full: positions 0...15 are read, the last one predicts a 14th token.
        XCTAssertEqual(try model.generate(prompt: prompt, maxTokens: 100, sampler: sampler).count, 14)
    }

    /// Prompts generated together (prefilled in one pass, then decoded a token each per pass) get what each gets
    /// alone: greedy and sampled, with their own lengths, limits and stop tokens; tokens are reported as chosen.
    func testBatchedGenerationEqualsOneSequenceAtATime() throws {
        let configuration = ModelConfiguration(
            family: .gpt, vocabularySize: 17, contextLength: 24, layers: 2, hiddenSize: 16, heads: 4, intermediateSize: 32)
        let model = try TransformerModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 8)
        try model.convertToSLoPe()
        let requests = [
            GenerationRequest(prompt: [1, 2, 3], maxTokens: 9, sampler: try TokenSampler(temperature: 0)),
            GenerationRequest(prompt: [4], maxTokens: 5, sampler: try TokenSampler(temperature: 1.2, seed: 3)),
            GenerationRequest(prompt: [5, 6, 7, 8, 9, 10, 11], maxTokens: 30, sampler: try TokenSampler(temperature: 0.9, topK: 5, seed: 4)),
            GenerationRequest(prompt: [12, 13], maxTokens: 12, sampler: try TokenSampler(temperature: 1, seed: 5), stopTokens: [0]),
        ]
        let alone = try requests.map { try model.generate([$0])[0] }
        var streamed = [[Int32]](repeating: [], count: requests.count)
        let together = try model.generate(requests) { streamed[$0].append($1) }
        XCTAssertEqual(together, alone)
        XCTAssertEqual(streamed, together, "every token reported once, in order")
        XCTAssertEqual(together[0].count, 9)
        XCTAssertEqual(together[1].count, 5)
        XCTAssertEqual(together[2].count, 24 - 7 + 1, "stopped by the context: the last position predicts one more")
        if let stop = together[3].firstIndex(of: 0) { XCTAssertEqual(together[3].count, stop + 1, "ends at its stop token") }
        // A cache kept across calls (its decode steps recorded once, replayed after) gives the same; one too small is named.
        let recording = CPUBackend(recordsWork: true)
        let replaying = try TransformerModel(configuration: configuration, dtype: .float64, backend: recording, seed: 8)
        try replaying.convertToSLoPe()
        let cache = try KeyValueCache(model: replaying, slots: 4, capacity: 24)
        for _ in 0..<2 { XCTAssertEqual(try replaying.generate(requests, cache: cache), together) }
        XCTAssertNil(cache.unrecordedReason)
        XCTAssertThrowsError(try model.generate(requests, cache: KeyValueCache(model: model, slots: 3, capacity: 24))) {
            XCTAssertTrue("\($0)".contains("holds 3 sequences of 24 positions; these requests need 4 of 24"), "\($0)")
        }
        // Prompts the model cannot take are named.
        for (prompt, message) in [([], "prompt 2 is empty"), ([40], "outside the vocabulary"), (Array(repeating: 1, count: 24), "has 24 tokens")] as [([Int32], String)] {
            XCTAssertThrowsError(try model.generate([requests[0], GenerationRequest(prompt: prompt, maxTokens: 2, sampler: try TokenSampler())])) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
    }

    /// Generation's stacked q/k/v (one projection, its output split) gives the logits the three projections give: a
    /// dense OPT shape with biases, and grouped-query LLaMA with merged SLoPe layers (q wider than k and v); prefill of
    /// two prompts, then decode steps. A model so prepared can no longer be saved or exported.
    func testStackedProjectionsGiveWhatSeparateOnesGive() throws {
        let shapes: [(ModelConfiguration, Bool)] = [
            (ModelConfiguration(family: .gpt, vocabularySize: 17, contextLength: 24, layers: 2, hiddenSize: 16, heads: 4, intermediateSize: 32), false),
            (ModelConfiguration(family: .llama, vocabularySize: 17, contextLength: 24, layers: 2, hiddenSize: 32, heads: 4, keyValueHeads: 2,
                                intermediateSize: 64), true),
        ]
        for (configuration, sparse) in shapes {
            func model() throws -> TransformerModel {
                let model = try TransformerModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 8)
                if sparse {
                    try model.convertToSLoPe()
                    for parameter in try model.attachAdapters(rank: 4, seed: 2) where parameter.name.hasSuffix(".up") {
                        try cpu.copy(randomTensor(cpu, parameter.value.shape, dtype: .float64, seed: 3, std: 0.1), into: parameter.value)
                    }
                }
                return model
            }
            let (separate, stacked) = (try model(), try model())
            try separate.prepareForGeneration(stacking: false)
            XCTAssertFalse(stacked.blocks[0].attention.query is StackedProjection.Part)
            try stacked.prepareForGeneration()
            XCTAssertTrue(stacked.blocks.allSatisfy { $0.attention.query is StackedProjection.Part && $0.attention.value is StackedProjection.Part },
                          "every block's q, k and v stacked")
            typealias Segment = KeyValueCache.Segment
            let calls: [([Int32], [Segment])] = [
                ([1, 2, 3, 4, 5, 6], [.init(slot: 0, count: 4), .init(slot: 1, count: 2)]),
                ([7, 8], [.init(slot: 0, count: 1), .init(slot: 1, count: 1)]),
                ([9, 10], [.init(slot: 1, count: 1), .init(slot: 0, count: 1)]),
            ]
            let caches = (try KeyValueCache(model: separate, slots: 2, capacity: 16), try KeyValueCache(model: stacked, slots: 2, capacity: 16))
            for (step, (tokens, segments)) in calls.enumerated() {
                let expected = try cpu.doubles(separate.nextTokenLogits(tokens: tokens, segments: segments, cache: caches.0))
                let got = try cpu.doubles(stacked.nextTokenLogits(tokens: tokens, segments: segments, cache: caches.1))
                XCTAssertEqual(got.count, 2 * 17)
                for (a, b) in zip(got, expected) { XCTAssertEqual(a, b, accuracy: 1e-10, "\(configuration.family) call \(step + 1)") }
            }
            // The stacked form is inference-only: it refuses to be written (a checkpoint would miss q, k and v).
            XCTAssertTrue(stacked.isPreparedForInference)
            XCTAssertEqual(separate.isPreparedForInference, sparse, "merged SLoPe layers are inference-only too")
            let folder = FileManager.default.temporaryDirectory.path + "/slope-stacked-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: folder) }
            XCTAssertThrowsError(try HuggingFaceExport.write(stacked, to: folder)) {
                XCTAssertTrue("\($0)".contains("merged or stacked for inference"), "\($0)")
            }
            XCTAssertThrowsError(try Checkpoint.save(model: stacked, notes: [:], to: folder + "/model.safetensors"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/model.safetensors"))
        }
        // Projections of different kinds or bias presence do not stack; unmerged SLoPe layers stay apart.
        var generator = SeededGenerator(seed: 1)
        let withBias = try Linear(inFeatures: 8, outFeatures: 4, backend: cpu, generator: &generator)
        let without = try Linear(inFeatures: 8, outFeatures: 4, bias: false, backend: cpu, generator: &generator)
        XCTAssertNil(try StackedProjection(stacking: [withBias, without], backend: cpu))
        XCTAssertNil(try StackedProjection(stacking: [withBias], backend: cpu))
        let unmerged = try TransformerModel(configuration: shapes[0].0, backend: cpu, seed: 1)
        try unmerged.convertToSLoPe()
        try unmerged.prepareForGeneration(merging: false)
        XCTAssertTrue(unmerged.blocks[0].attention.query is SparseLinear)
        XCTAssertFalse(unmerged.isPreparedForInference)
    }

    func testExportFoldsAdaptersIntoDenseWeights() throws {
        let configuration = ModelConfiguration(
            family: .gpt, vocabularySize: 11, contextLength: 8, layers: 1, hiddenSize: 8, heads: 2, intermediateSize: 16, activation: .relu)
        let model = try TransformerModel(configuration: configuration, backend: cpu, seed: 1)
        try model.convertToSLoPe()
        for parameter in try model.attachAdapters(rank: 2, seed: 2) where parameter.name.hasSuffix(".up") {
            try cpu.copy(randomTensor(cpu, parameter.value.shape, seed: 3, std: 0.1), into: parameter.value)
        }
        let tokens = try cpu.tensor([1, 2, 3, 4] as [Int32], shape: [4])
        let expected = try cpu.floats(model.logits(tokens: tokens, batch: 1, sequence: 4))
        let folder = FileManager.default.temporaryDirectory.path + "/slope-export-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try HuggingFaceExport.write(model, to: folder, endOfText: 10)
        let file = try SafeTensors.read(folder + "/model.safetensors")
        XCTAssertFalse(file.tensors.keys.contains { $0.contains("adapter") }, "adapters are folded in")
        XCTAssertEqual(file.tensors["model.decoder.layers.0.fc1.weight"]?.shape, [16, 8])
        XCTAssertEqual(file.metadata["format"], "pt")
        // A dense model loaded from the export computes the same logits.
        let dense = try TransformerModel(configuration: configuration, backend: cpu, seed: 99)
        for parameter in dense.parameters { try file.load(parameter.name, into: parameter.value, backend: cpu) }
        assertClose(try cpu.floats(dense.logits(tokens: tokens, batch: 1, sequence: 4)), expected, rtol: 1e-4, atol: 1e-5)
        let config = String(decoding: FileManager.default.contents(atPath: folder + "/config.json")!, as: UTF8.self)
        for field in ["\"OPTForCausalLM\"", "\"ffn_dim\": 16", "\"activation_function\": \"relu\"", "\"max_position_embeddings\": 8",
                      "\"eos_token_id\": 10", "\"torch_dtype\": \"float32\""] {
            XCTAssertTrue(config.contains(field), "config.json has \(field):\n\(config)")
        }
    }

    /// The backend's truncation keeps exactly the columns ``TokenSampler`` gives weight to, over random rows with
    /// ties (values rounded to quarters) and every mix of top-k and top-p; so drawing on the device after it is
    /// drawing from the host's distribution.
    func testTruncatedLogitsKeepWhatTheHostSamplerKeeps() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 3)
        for trial in 0..<60 {
            let columns = 5 + trial % 40
            let values = (0..<columns).map { _ in Float((generator.nextUniform() * 16).rounded()) / 4 }
            let topK: Int? = trial % 3 == 0 ? nil : 1 + trial % 7
            let topP: Double? = trial % 4 == 0 ? nil : [0.3, 0.5, 0.9, 0.99][trial % 4]
            let temperature = [0.5, 1, 2][trial % 3]
            let sampler = try TokenSampler(temperature: temperature, topK: topK, topP: topP)
            let kept = try cpu.floats(cpu.truncatedLogits(
                cpu.tensor(values, shape: [1, columns], dtype: .float32), temperatures: [Float(temperature)], topK: [topK ?? 0], topP: [Float(topP ?? 1)]))
            let host = sampler.distribution(values)
            XCTAssertEqual(kept.map { $0 > -.infinity }, host.map { $0 > 0 }, "trial \(trial): \(values) top-k \(topK.map(String.init) ?? "-") top-p \(topP ?? 1)")
        }
    }
}
