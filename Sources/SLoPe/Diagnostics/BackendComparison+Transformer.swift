import FoundationEssentials

extension BackendComparison {
    /// RMSNorm, rotary embeddings and attention (causal, grouped-query, KV-cache shaped, several head sizes).
    func transformerOps(_ dtype: DType, _ results: inout [Check]) throws {
        let x = try random([37, 96], dtype, std: 2), dy = try random([37, 96], dtype), weight = try random([96], dtype)
        check("rmsNorm forward + backward", dtype, &results) { backend, on in
            let saved = try backend.rmsNorm(self.pick(x, on), weight: self.pick(weight, on), epsilon: 1e-5)
            let gradients = try backend.rmsNormBackward(self.pick(dy, on), input: self.pick(x, on), weight: self.pick(weight, on), saved: saved)
            return [saved.output, saved.reciprocalRMS, gradients.input, gradients.weight]
        }
        let residual = try random([37, 96], dtype), residualGradient = try random([37, 96], dtype)
        check("rmsNorm with residual add + gradient", dtype, &results) { backend, on in
            let saved = try backend.rmsNorm(self.pick(x, on), adding: self.pick(residual, on), weight: self.pick(weight, on), epsilon: 1e-5)
            guard let sum = saved.sum else { throw TensorError.invalidArgument(operation: "rmsNorm", reason: "no sum returned") }
            let gradients = try backend.rmsNormBackward(
                self.pick(dy, on), input: sum, weight: self.pick(weight, on), saved: saved, addingGradient: self.pick(residualGradient, on))
            return [sum, saved.output, saved.reciprocalRMS, gradients.input, gradients.weight]
        }
        let rotated = try random([2 * 40, 3 * 32], dtype)
        check("rotaryEmbedding forward + inverse", dtype, &results) { backend, on in
            let layout = RotaryLayout(sequenceLength: 40, positionOffset: 7, headDimension: 32, base: 10_000)
            let y = try backend.rotaryEmbedding(self.pick(rotated, on), layout: layout, inverse: false)
            return [y, try backend.rotaryEmbedding(y, layout: layout, inverse: true)]
        }
        // Past the first table's 4096 positions (the GPU grows its table), at LLaMA 3's base.
        let late = try random([3, 2 * 64], dtype)
        check("rotaryEmbedding at positions 5000…5002", dtype, &results) { backend, on in
            let layout = RotaryLayout(sequenceLength: 3, positionOffset: 5000, headDimension: 64, base: 500_000)
            return [try backend.rotaryEmbedding(self.pick(late, on), layout: layout, inverse: false)]
        }
        // A decode step's ops reading their indices from the device (what a recorded step replays).
        let (stepRows, cacheKeys, cacheValues) = (try random([3, 2 * 64], dtype), try random([40, 64], dtype), try random([40, 64], dtype))
        check("ops on device indices: rotaryEmbedding, scatterRows, gatherRows, decodeAttention", dtype, &results) { backend, on in
            let positions = try backend.tensor([9, 0, 4097] as [Int32], shape: [3])
            let rotated = try backend.rotaryEmbedding(self.pick(stepRows, on), positions: positions, headDimension: 64, base: 10_000, positionLimit: 5000)
            let (keys, values) = (try backend.zeros([40, 64], dtype: dtype), try backend.zeros([40, 64], dtype: dtype))
            try backend.copy(self.pick(cacheKeys, on), into: keys)
            try backend.copy(self.pick(cacheValues, on), into: values)
            let newRows = try backend.matmul(rotated, backend.tensor([Float](repeating: 0.05, count: 128 * 64), shape: [128, 64], dtype: dtype))
            let rows = try backend.tensor([12, 39, 0] as [Int32], shape: [3])
            try backend.scatterRows(newRows, into: keys, rows: rows)
            try backend.scatterRows(newRows, into: values, rows: rows)
            let ranges = try backend.tensor([3, 20, 0, 10, 20, 1] as [Int32], shape: [6])
            let shape = DecodeAttentionShape(queryHeads: 2, keyValueHeads: 1, headDimension: 64)
            let gathered = try backend.gatherRows(keys, rows: backend.tensor([39, 12, 5, 12] as [Int32], shape: [4]))
            return [rotated, keys, values, gathered,
                    try backend.decodeAttention(query: rotated, keys: keys, values: values, ranges: ranges, maxLength: 20, shape: shape)]
        }
        let (gate, up, dh) = (try random([37, 100], dtype, std: 2), try random([37, 100], dtype), try random([37, 100], dtype))
        for kind in [Activation.silu, .gelu] {
            check("gatedActivation \(kind) forward + backward", dtype, &results) { backend, on in
                let h = try backend.gatedActivation(gate: self.pick(gate, on), up: self.pick(up, on), kind)
                let g = try backend.gatedActivationBackward(gate: self.pick(gate, on), up: self.pick(up, on), gradient: self.pick(dh, on), kind)
                return [h, g.gate, g.up]
            }
        }
        // A linear layer and its activation in one call (ReLU in the GEMM's epilogue on the GPU), with and without bias.
        let (input, projection, bias) = (try random([2, 37, 96], dtype), try random([200, 96], dtype), try random([200], dtype))
        for kind in [Activation.relu, .gelu, .tanh, .geluExact] {
            check("linearActivated \(kind), with and without bias", dtype, &results) { backend, on in
                [try backend.linearActivated(self.pick(input, on), weight: self.pick(projection, on), bias: self.pick(bias, on), kind),
                 try backend.linearActivated(self.pick(input, on), weight: self.pick(projection, on), bias: nil, kind)]
            }
        }
        attention(dtype, suffix: "", &results)
    }

    /// The attention shapes every route is checked at: partial tiles, grouped-query heads, cached keys, causal and
    /// not, each fused head dimension.
    public static let attentionShapes: [AttentionShape] = [
        AttentionShape(batch: 2, queryLength: 70, queryHeads: 3, headDimension: 64),
        AttentionShape(batch: 1, queryLength: 100, queryHeads: 4, keyValueHeads: 2, headDimension: 32),
        AttentionShape(batch: 2, queryLength: 5, keyLength: 45, queryHeads: 2, keyValueHeads: 1, headDimension: 128),
        AttentionShape(batch: 1, queryLength: 33, queryHeads: 2, headDimension: 80, causal: false),
        // An encoder's padded batch (the GEMM route masks the padding).
        AttentionShape(batch: 3, queryLength: 40, queryHeads: 4, headDimension: 64, causal: false, keyLengths: [40, 17, 1]),
        // Non-causal at the tensor-core head sizes (partial query blocks and key tiles).
        AttentionShape(batch: 1, queryLength: 50, keyLength: 70, queryHeads: 2, keyValueHeads: 1, headDimension: 64, causal: false),
        AttentionShape(batch: 1, queryLength: 40, keyLength: 72, queryHeads: 2, headDimension: 128, causal: false),
        // Long enough for the GPU's causal chunking (4 query chunks), with cached keys before them.
        AttentionShape(batch: 2, queryLength: 260, keyLength: 300, queryHeads: 4, keyValueHeads: 2, headDimension: 64),
        // The other fused head sizes, causal and not, over several key blocks and query tiles.
        AttentionShape(batch: 2, queryLength: 150, queryHeads: 4, keyValueHeads: 2, headDimension: 80),
        AttentionShape(batch: 1, queryLength: 130, keyLength: 140, queryHeads: 2, headDimension: 96),
        AttentionShape(batch: 1, queryLength: 70, keyLength: 200, queryHeads: 3, headDimension: 96, causal: false),
        AttentionShape(batch: 2, queryLength: 260, keyLength: 300, queryHeads: 4, keyValueHeads: 2, headDimension: 128),
        AttentionShape(batch: 1, queryLength: 100, queryHeads: 2, headDimension: 256),
        AttentionShape(batch: 1, queryLength: 40, keyLength: 150, queryHeads: 2, keyValueHeads: 1, headDimension: 256, causal: false),
        // Causal, one key/value head for four query heads, lengths a multiple of 128.
        AttentionShape(batch: 2, queryLength: 256, queryHeads: 4, keyValueHeads: 1, headDimension: 128),
        // Dropped attention probabilities (the CPU's mask): an encoder's padded batch, and causal grouped-query heads. No
        // sequence of one key here: its scores' gradient is zero analytically, and with the dropped P rounded to bf16
        // for the tensor cores (×1.1094 for ×1.1111) the two backends compare cancellation noise (~3% of dK on an H100).
        AttentionShape(batch: 3, queryLength: 40, queryHeads: 4, headDimension: 64, causal: false, keyLengths: [40, 17, 5],
                       dropout: SeededDropout(probability: 0.1, seed: 0xA77E)),
        AttentionShape(batch: 2, queryLength: 70, queryHeads: 4, keyValueHeads: 2, headDimension: 32,
                       dropout: SeededDropout(probability: 0.4, seed: 0xA77F)),
    ]

    /// Attention at ``attentionShapes`` in float32 and bfloat16; `suffix` labels the route being checked.
    public func runAttentionChecks(suffix: String) -> [Check] {
        var results: [Check] = []
        for dtype in [DType.float32, .bfloat16] { attention(dtype, suffix: suffix, &results) }
        return results
    }

    private func attention(_ dtype: DType, suffix: String, _ results: inout [Check]) {
        do {
            let shapes = Self.attentionShapes
            for s in shapes {
                let d = s.headDimension
                let q = try random([s.batch * s.queryLength, s.queryHeads * d], dtype)
                let k = try random([s.batch * s.keyLength, s.keyValueHeads * d], dtype)
                let v = try random([s.batch * s.keyLength, s.keyValueHeads * d], dtype)
                let dOut = try random([s.batch * s.queryLength, s.queryHeads * d], dtype)
                let label = "attention B\(s.batch) Tq\(s.queryLength) Tk\(s.keyLength) H\(s.queryHeads)/\(s.keyValueHeads) D\(d)\(s.causal ? "" : " full")"
                    + (s.dropout.map { " dropout \($0.probability)" } ?? "")
                check(label + " forward + backward" + suffix, dtype, &results) { backend, on in
                    let saved = try backend.attention(query: self.pick(q, on), key: self.pick(k, on), value: self.pick(v, on), shape: s)
                    let g = try backend.attentionBackward(
                        self.pick(dOut, on), query: self.pick(q, on), key: self.pick(k, on), value: self.pick(v, on), saved: saved, shape: s)
                    return [saved.output, saved.logSumExp, g.query, g.key, g.value]
                }
            }
        } catch {
            results.append(Check(name: "attention inputs \(suffix)", dtype: dtype, error: .infinity, tolerance: 0, failure: "\(error)"))
        }
    }

    /// The key projection's bias adds the same q·b to every score of a row, which softmax cancels: its
    /// gradient is zero up to rounding on both backends, so a relative comparison of it is meaningless.
    static func hasMeaningfulGradient(_ parameter: Parameter) -> Bool {
        !parameter.name.hasSuffix("k_proj.bias") && !parameter.name.hasSuffix("attention.self.key.bias")
    }

    /// A whole tiny model of each family, dense and SLoPe: logits, loss and every gradient after one
    /// forward and backward pass, then the logits after one optimizer step.
    public func runModelChecks(dtype: DType = .bfloat16) -> [Check] {
        var results: [Check] = []
        let configurations: [(String, ModelConfiguration)] = [
            ("GPT/OPT", ModelConfiguration(
                family: .gpt, vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 128, heads: 2, intermediateSize: 256)),
            ("LLaMA", ModelConfiguration(
                family: .llama, vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 128, heads: 4, keyValueHeads: 2,
                intermediateSize: 256)),
            // Head dimensions 80 (OPT-2.7B, Pythia, Phi) and 96 (many 3B models) take the fused attention kernels too.
            ("GPT/OPT D80", ModelConfiguration(
                family: .gpt, vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 160, heads: 2, intermediateSize: 320)),
            ("LLaMA D96", ModelConfiguration(
                family: .llama, vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 192, heads: 2, keyValueHeads: 1,
                intermediateSize: 384)),
        ]
        let (batch, sequence) = (2, 64)
        var generator = SeededGenerator(seed: 77)
        let ids = (0...(batch * sequence)).map { _ in Int32(generator.next() % 97) }
        for (name, configuration) in configurations {
            for sparse in [false, true] {
                let labels = try? { () throws -> [String] in
                    let model = try TransformerModel(configuration: configuration, backend: reference, seed: 5)
                    if sparse { try model.convertToSLoPe() }
                    return ["logits", "loss"] + model.parameters.filter(Self.hasMeaningfulGradient).map { "d " + $0.name }
                        + model.sparseWeights.map { "d " + $0.name }
                        + ["logits after one step"]
                }()
                check("model \(name) \(sparse ? "SLoPe" : "dense") forward + backward + step", dtype, &results, labels: labels) { backend, _ in
                    let model = try TransformerModel(configuration: configuration, dtype: dtype, backend: backend, seed: 5)
                    if sparse { try model.convertToSLoPe() }
                    let tokens = try backend.tensor(Array(ids.dropLast()), shape: [batch * sequence])
                    let targets = try backend.tensor(Array(ids.dropFirst()), shape: [batch * sequence])
                    let logits = try model.logits(tokens: tokens, batch: batch, sequence: sequence)
                    let loss = try backend.tensor([model.loss(tokens: tokens, targets: targets, batch: batch, sequence: sequence)], shape: [1], dtype: .float32)
                    try model.backward()
                    let gradients = model.parameters.filter(Self.hasMeaningfulGradient).compactMap(\.gradient)
                        + model.sparseWeights.compactMap(\.gradient)
                    let configuration = AdamWConfiguration(learningRate: 1e-3)
                    try SparseAdamW(weights: model.sparseWeights, configuration: configuration, backend: backend).step()
                    try AdamW(parameters: model.parameters, configuration: configuration, backend: backend).step()
                    return [logits, loss] + gradients + [try model.logits(tokens: tokens, batch: batch, sequence: sequence)]
                }
            }
            check("model \(name) SLoPe merged: KV-cached generation, prefill and decode packed", dtype, &results,
                  labels: ["prefill of 2 prompts", "decode + prefill", "decode of 3"]) { backend, _ in
                let model = try TransformerModel(configuration: configuration, dtype: dtype, backend: backend, seed: 5)
                try model.convertToSLoPe()
                _ = try model.attachAdapters(rank: 8, seed: 2)
                try model.mergeForInference()
                let cache = try KeyValueCache(model: model, slots: 3, capacity: 48)
                typealias Segment = KeyValueCache.Segment
                let calls: [[Segment]] = [[.init(slot: 0, count: 17), .init(slot: 2, count: 5)],
                                          [.init(slot: 2, count: 1), .init(slot: 1, count: 30), .init(slot: 0, count: 1)],
                                          [.init(slot: 0, count: 1), .init(slot: 1, count: 1), .init(slot: 2, count: 1)]]
                var next = 0
                return try calls.map { segments in
                    let count = segments.map(\.count).reduce(0, +)
                    defer { next += count }
                    return try model.nextTokenLogits(tokens: Array(ids[next..<(next + count)]), segments: segments, cache: cache)
                }
            }
            // Decode steps past the first of each batch size replay a recording (a CUDA graph on the GPU): every step's
            // logits, taken before the next step overwrites them, against the CPU's op-by-op steps.
            let steps: [[Int]] = [[0, 1, 2], [0, 1, 2], [2, 0, 1], [0, 1, 2], [0, 2], [0, 2], [2, 0], [0, 1, 2]]
            check("model \(name) SLoPe merged, q/k/v stacked: recorded decode steps (batch 3 and 2, slots reordered)", dtype, &results,
                  labels: steps.indices.map { "step \($0 + 1)" }) { backend, on in
                let model = try TransformerModel(configuration: configuration, dtype: dtype, backend: backend, seed: 5)
                try model.convertToSLoPe()
                _ = try model.attachAdapters(rank: 8, seed: 2)
                try model.prepareForGeneration()
                let cache = try KeyValueCache(model: model, slots: 3, capacity: 48)
                _ = try model.nextTokenLogits(tokens: Array(ids[0..<12]), segments: (0..<3).map { .init(slot: $0, count: 4) }, cache: cache)
                let outputs = try steps.enumerated().map { step, slots in
                    let logits = try model.nextTokenLogits(
                        tokens: slots.map { ids[12 + 3 * step + $0] }, segments: slots.map { .init(slot: $0, count: 1) }, cache: cache)
                    let kept = try backend.zeros(logits.shape, dtype: logits.dtype)
                    try backend.copy(logits, into: kept)
                    return kept
                }
                if on, backend.device != .cpu, let reason = cache.unrecordedReason {
                    throw TensorError.invalidArgument(operation: "recorded decode steps", reason: "the steps were not recorded: \(reason)")
                }
                return outputs
            }
        }
        encoderModel(dtype, &results)
        return results
    }

    /// ``runModelChecks(dtype:)``'s tiny BERTs alone, at `dtype` and `tolerance` (the default: DESIGN.md's for the
    /// dtype). In float32 they take no fused kernel: with the bfloat16 checks, that tells a kernel's error from the
    /// rest of the encoder's.
    public func runEncoderModelChecks(dtype: DType, tolerance: Double? = nil) -> [Check] {
        var results: [Check] = []
        encoderModel(dtype, &results, tolerance: tolerance)
        return results
    }

    /// A tiny BERT, dense and SLoPe, on a padded batch (its blocks run on the real tokens alone, attention padding
    /// them back), dense with the padding kept in the blocks, with no padding, and training with dropout (hidden and
    /// attention probabilities: the same masks on both backends): both pretraining losses and every gradient after
    /// one forward and backward pass.
    private func encoderModel(_ dtype: DType, _ results: inout [Check], tolerance: Double? = nil) {
        let configuration = EncoderConfiguration(vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 128, heads: 2, intermediateSize: 256)
        let sequence = 40
        var generator = SeededGenerator(seed: 78)
        let ids = (0..<(3 * sequence)).map { _ in Int32(generator.next() % 97) }
        let variants: [(label: String, sparse: Bool, lengths: [Int], removesPadding: Bool, dropout: Bool)] = [
            ("dense, padded batch", false, [40, 23, 9], true, false), ("SLoPe, padded batch", true, [40, 23, 9], true, false),
            ("dense, padded batch, padding kept in the blocks", false, [40, 23, 9], false, false),
            ("dense, no padding", false, [40, 40, 40], true, false),
            ("SLoPe, padded batch, dropout 0.1 (hidden and attention)", true, [40, 23, 9], true, true),
        ]
        for variant in variants {
            let lengths = variant.lengths
            let types = (0..<(3 * sequence)).map { Int32($0 % sequence >= 6 && $0 % sequence < lengths[$0 / sequence] ? 1 : 0) }
            let labels = ids.indices.map { $0 % 5 == 1 && $0 % sequence < lengths[$0 / sequence] ? ids[$0] : EncoderModel.ignoredLabel }
            let names = try? { () throws -> [String] in
                let model = try EncoderModel(configuration: configuration, backend: reference, seed: 5)
                if variant.sparse { try model.convertToSLoPe() }
                return ["masked-LM loss", "next-sentence loss"] + model.parameters.filter(Self.hasMeaningfulGradient).map { "d " + $0.name }
                    + model.sparseWeights.map { "d " + $0.name }
            }()
            check("model BERT \(variant.label): losses + gradients", dtype, &results, tolerance: tolerance, labels: names) { backend, _ in
                let model = try EncoderModel(configuration: configuration, dtype: dtype, backend: backend, seed: 5)
                if variant.sparse { try model.convertToSLoPe() }
                model.removesPadding = variant.removesPadding
                if variant.dropout {
                    try model.setDropout(0.1)
                    try model.setAttentionDropout(0.1)
                    model.dropoutSeed = 0xD80F
                }
                let losses = try model.pretrainingLosses(
                    tokens: backend.tensor(ids, shape: [ids.count]), tokenTypes: backend.tensor(types, shape: [types.count]), labels: labels,
                    nextSentenceLabels: [0, 1, 1], lengths: lengths, batch: 3, sequence: sequence)
                try model.backward()
                return [try backend.tensor([Float(losses.maskedLM), Float(losses.nextSentence)], shape: [2], dtype: .float32)]
                    + model.parameters.filter(Self.hasMeaningfulGradient).compactMap(\.gradient) + model.sparseWeights.compactMap(\.gradient)
            }
        }
    }

    /// A SLoPe run (past a mask re-selection, into the adapter phase) saved and resumed on the same backend:
    /// the resumed model's logits must equal the saved model's, and its next step's loss the uninterrupted
    /// run's. Exercises the checkpoint path on the device: downloads, the streamed file, uploads of raw bytes.
    public func runCheckpointCheck(dtype: DType = .bfloat16) -> [Check] {
        var results: [Check] = []
        let configuration = ModelConfiguration(
            family: .gpt, vocabularySize: 97, contextLength: 64, layers: 2, hiddenSize: 128, heads: 2, intermediateSize: 256)
        var generator = SeededGenerator(seed: 91)
        let tokens = (0..<4096).map { _ in Int32(generator.next() % 97) }
        let (train, validation) = (Array(tokens.prefix(3584)), Array(tokens.suffix(512)))
        let options = TrainingOptions(
            steps: 4, batchSize: 2, sequenceLength: 32, adapterFraction: 0.5, adapterRank: 4, maskChangeFrequency: 2)
        let labels = ["resumed logits", "resumed − saved logits", "next step's loss: resumed − uninterrupted"]
        check("checkpoint save + resume (SLoPe, adapters)", dtype, &results, labels: labels) { backend, _ in
            let path = FileManager.default.temporaryDirectory.path + "/slope-doctor-\(UInt32.random(in: 0...UInt32.max)).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            let model = try TransformerModel(configuration: configuration, dtype: dtype, backend: backend, seed: 3)
            let run = try Trainer(model: model, options: options, trainTokens: train, validationTokens: validation)
            for _ in 0..<3 { _ = try run.trainStep() }
            try Checkpoint.save(run, to: path)
            let probe = try backend.tensor(Array(validation.prefix(64)), shape: [64])
            let saved = try run.model.logits(tokens: probe, batch: 2, sequence: 32)
            let resumed = try Checkpoint.resume(SafeTensors.read(path), backend: backend, trainTokens: train, validationTokens: validation)
            let loaded = try resumed.model.logits(tokens: probe, batch: 2, sequence: 32)
            let lossGap = try resumed.trainStep().loss - run.trainStep().loss
            return [loaded, try backend.subtract(loaded, saved), try backend.tensor([Float(lossGap)], shape: [1], dtype: .float32)]
        }
        return results
    }
}
