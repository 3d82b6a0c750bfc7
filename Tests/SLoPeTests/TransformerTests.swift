@testable import SLoPe
import SlopeTestSupport
import XCTest

/// Whole-model checks: finite-difference gradients (Float64) of dense and SLoPe models of both families,
/// KV-cache generation, conversion plans and merged inference.
final class TransformerTests: XCTestCase {
    let cpu = CPUBackend()
    let (batch, sequence) = (2, 4)

    func configuration(_ family: ModelConfiguration.Family) -> ModelConfiguration {
        ModelConfiguration(
            family: family, vocabularySize: 11, contextLength: 8, layers: 2, hiddenSize: 8, heads: 2,
            keyValueHeads: family == .llama ? 1 : 2, intermediateSize: 16, activation: .gelu)
    }

    func batchTensors(seed: UInt64) throws -> (Tensor, Tensor) {
        var generator = SeededGenerator(seed: seed)
        let ids = (0..<(batch * sequence + 1)).map { _ in Int32(generator.next() % 11) }
        return (try cpu.tensor(Array(ids.dropLast()), shape: [batch * sequence]), try cpu.tensor(Array(ids.dropFirst()), shape: [batch * sequence]))
    }

    /// Compares every gradient with central differences of the loss at up to `samples` elements per tensor.
    func checkModelGradients(_ model: TransformerModel, _ message: String, samples: Int = 6) throws {
        let (tokens, targets) = try batchTensors(seed: 3)
        _ = try model.loss(tokens: tokens, targets: targets, batch: batch, sequence: sequence)
        try model.backward()
        let tensors: [(String, Tensor, Tensor?)] =
            model.parameters.map { ($0.name, $0.value, $0.gradient) } + model.sparseWeights.map { ($0.name, $0.values, $0.gradient) }
        XCTAssertGreaterThan(tensors.count, 10)
        for (name, value, gradient) in tensors {
            guard let gradient else { return XCTFail("\(message): \(name) got no gradient") }
            let analytic = try cpu.doubles(gradient)
            var original = try cpu.doubles(value)
            let picks = Set((0..<samples).map { $0 * original.count / samples })
            for index in picks.sorted() {
                func loss(_ delta: Double) throws -> Double {
                    var point = original
                    point[index] += delta
                    try cpu.copy(cpu.tensor(point, shape: value.shape, dtype: .float64), into: value)
                    return try model.loss(tokens: tokens, targets: targets, batch: batch, sequence: sequence)
                }
                let numeric = (try loss(1e-6) - loss(-1e-6)) / 2e-6
                try cpu.copy(cpu.tensor(original, shape: value.shape, dtype: .float64), into: value)
                assertClose([analytic[index]], [numeric], rtol: 1e-5, atol: 1e-8, "\(message): \(name)[\(index)]")
            }
            original.removeAll()
        }
    }

    func testDenseModelGradients() throws {
        for family in ModelConfiguration.Family.allCases {
            let model = try TransformerModel(configuration: configuration(family), dtype: .float64, backend: cpu, seed: 1)
            try checkModelGradients(model, "dense \(family)")
        }
    }

    /// SLoPe's dX uses W⊙Mc, so its gradients are exact only where Mc = Mr. Weights shaped so that Mr is
    /// also N:M along the output dimension make Mc = Mr, and the whole model's gradient checkable.
    func testSLoPeModelGradients() throws {
        for family in ModelConfiguration.Family.allCases {
            let model = try TransformerModel(configuration: configuration(family), dtype: .float64, backend: cpu, seed: 2)
            for (_, module) in model.blockProjections {
                let weight = (module as! Linear).weight.value
                let (rows, columns) = (weight.shape[0], weight.shape[1])
                var values = try cpu.doubles(weight)
                for r in 0..<rows {
                    for c in 0..<columns {
                        let v = values[r * columns + c]
                        // |kept| ≥ 0.3 > |pruned| (≤ 0.01·|v|): magnitude pruning picks exactly this pattern.
                        values[r * columns + c] = (r + c) % 4 < 2 ? 0.3 * v + (v < 0 ? -0.3 : 0.3) : 0.01 * v
                    }
                }
                try cpu.copy(cpu.tensor(values, shape: weight.shape, dtype: .float64), into: weight)
            }
            let report = try model.convertToSLoPe()
            XCTAssertEqual(report.sparseCount, family == .gpt ? 12 : 14)
            for weight in model.sparseWeights {
                XCTAssertEqual(try cpu.uint8s(weight.columnMask()), try cpu.uint8s(weight.rowMask()), "Mc = Mr for \(weight.name)")
            }
            try checkModelGradients(model, "SLoPe \(family)")
        }
    }

    /// Recomputing the blocks' activations in backward gives the same loss and bit-identical gradients (dense and
    /// SLoPe, both families, with gradient accumulation over two micro-batches), and the blocks keep nothing
    /// but their input between the passes.
    func testRecomputedActivationsGiveTheSameGradients() throws {
        for family in ModelConfiguration.Family.allCases {
            for sparse in [false, true] {
                func gradients(recompute: Bool) throws -> (Double, [[Double]]) {
                    let model = try TransformerModel(configuration: configuration(family), dtype: .float64, backend: cpu, seed: 6)
                    if sparse { _ = try model.convertToSLoPe() }
                    model.recomputesActivations = recompute
                    var loss = 0.0
                    for seed in [3, 4] as [UInt64] {
                        let (tokens, targets) = try batchTensors(seed: seed)
                        loss += try model.loss(tokens: tokens, targets: targets, batch: batch, sequence: sequence)
                        if recompute {
                            // Between the passes a block keeps only its input: its attention cannot run backward.
                            XCTAssertThrowsError(try model.blocks[0].attention.backward(cpu.zeros([batch * sequence, 8], dtype: .float64)))
                        }
                        try model.backward(scale: 0.5)
                    }
                    let tensors = model.parameters.compactMap(\.gradient) + model.sparseWeights.compactMap(\.gradient)
                    return (loss, try tensors.map { try cpu.doubles($0) })
                }
                let (kept, keptGradients) = try gradients(recompute: false)
                let (recomputed, recomputedGradients) = try gradients(recompute: true)
                XCTAssertEqual(kept, recomputed, "\(family) sparse \(sparse)")
                XCTAssertEqual(keptGradients.count, recomputedGradients.count)
                XCTAssertGreaterThan(keptGradients.count, 10)
                for (a, b) in zip(keptGradients, recomputedGradients) { XCTAssertEqual(a, b, "\(family) sparse \(sparse)") }
            }
        }
    }

    /// The ReLU MLP (OPT) keeps the activation's output, not its input: input and weight gradients still match
    /// finite differences.
    func testReLUMLPGradients() throws {
        var relu = configuration(.gpt)
        relu.activation = .relu
        let model = try TransformerModel(configuration: relu, dtype: .float64, backend: cpu, seed: 11)
        let mlp = model.blocks[0].mlp
        let x = try randomTensor(cpu, [3, 8], dtype: .float64, seed: 12)
        let weights = randomValues(3 * 8, seed: 13)
        func loss() throws -> Double { weightedSum(try cpu.doubles(mlp.forward(x)), weights) }
        _ = try mlp.forward(x)
        let dx = try cpu.doubles(mlp.backward(cpu.tensor(weights, shape: [3, 8], dtype: .float64)))
        assertClose(dx, try finiteDifferenceGradient(of: x, backend: cpu, loss), rtol: 1e-6, atol: 1e-9, "dx")
        let up = (mlp.up as! Linear).weight
        assertClose(try cpu.doubles(up.gradient!), try finiteDifferenceGradient(of: up.value, backend: cpu, loss), rtol: 1e-6, atol: 1e-9, "d up")
    }

    /// The MLP keeps one [tokens, intermediate] tensor: with GELU or SwiGLU the down projection forgets its input
    /// (recomputed in backward), with ReLU the activation's output is what both keep.
    func testTheDownProjectionsInputIsNotKeptTwice() throws {
        for (family, activation) in [(ModelConfiguration.Family.gpt, Activation.gelu), (.llama, .silu)] {
            var configuration = configuration(family)
            configuration.activation = activation
            let model = try TransformerModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 14)
            let mlp = model.blocks[0].mlp
            _ = try mlp.forward(randomTensor(cpu, [3, 8], dtype: .float64, seed: 15))
            let dy = try randomTensor(cpu, [3, 8], dtype: .float64, seed: 16)
            XCTAssertThrowsError(try (mlp.down as! Linear).backward(dy), "\(family)")  // nothing kept
            XCTAssertNoThrow(try mlp.backward(dy), "\(family)")
        }
    }

    /// SwiGLU on its own: `down(silu(gate(x)) ⊙ up(x))`, its input gradient and the gate's weight gradient.
    func testSwiGLUGradients() throws {
        let model = try TransformerModel(configuration: configuration(.llama), dtype: .float64, backend: cpu, seed: 8)
        let mlp = model.blocks[0].mlp
        XCTAssertNotNil(mlp.gate)
        let x = try randomTensor(cpu, [3, 8], dtype: .float64, seed: 9)
        let weights = randomValues(3 * 8, seed: 10)
        func loss() throws -> Double { weightedSum(try cpu.doubles(mlp.forward(x)), weights) }
        _ = try mlp.forward(x)
        let dx = try cpu.doubles(mlp.backward(cpu.tensor(weights, shape: [3, 8], dtype: .float64)))
        assertClose(dx, try finiteDifferenceGradient(of: x, backend: cpu, loss), rtol: 1e-6, atol: 1e-9, "dx")
        let gate = (mlp.gate as! Linear).weight
        assertClose(try cpu.doubles(gate.gradient!), try finiteDifferenceGradient(of: gate.value, backend: cpu, loss), rtol: 1e-6, atol: 1e-9, "d gate")
    }

    /// Sequences continued through a ``KeyValueCache``, several at once and packed into one call (one slot prefilling
    /// a prompt while others decode a token), get each sequence's own full-forward logits.
    func testKeyValueCacheGivesTheFullForwardsLogits() throws {
        for family in ModelConfiguration.Family.allCases {
            let model = try TransformerModel(configuration: configuration(family), dtype: .float64, backend: cpu, seed: 4)
            try model.convertToSLoPe()
            let sequences: [[Int32]] = [[3, 1, 4, 1, 5, 9], [2, 7, 1, 8, 2, 8], [6, 6, 6, 6, 6, 6]]
            let vocabulary = model.configuration.vocabularySize
            let full = try sequences.map { ids in try cpu.doubles(model.logits(tokens: cpu.tensor(ids, shape: [6]), batch: 1, sequence: 6)) }
            let cache = try KeyValueCache(model: model, slots: 4, capacity: 6)
            // Calls: (slot, tokens) of sequence slot − 1; slot 0 stays empty.
            let calls: [[(Int, Range<Int>)]] = [[(1, 0..<3), (2, 0..<1)], [(2, 1..<4), (1, 3..<4)], [(3, 0..<5), (1, 4..<5), (2, 4..<5)],
                                                [(1, 5..<6), (3, 5..<6), (2, 5..<6)]]
            for call in calls {
                let segments = call.map { KeyValueCache.Segment(slot: $0.0, count: $0.1.count) }
                let logits = try cpu.doubles(model.nextTokenLogits(tokens: call.flatMap { Array(sequences[$0.0 - 1][$0.1]) }, segments: segments, cache: cache))
                XCTAssertEqual(logits.count, call.count * vocabulary, "one row per segment")
                for (row, (slot, range)) in call.enumerated() {
                    let position = range.upperBound - 1
                    assertClose(Array(logits[(row * vocabulary)..<((row + 1) * vocabulary)]),
                                Array(full[slot - 1][(position * vocabulary)..<((position + 1) * vocabulary)]),
                                rtol: 1e-10, atol: 1e-12, "\(family) slot \(slot) position \(position)")
                }
            }
            XCTAssertEqual(cache.lengths, [0, 6, 6, 6])
            cache.reset(slot: 2)
            XCTAssertEqual(cache.lengths, [0, 6, 0, 6])
            // What a cache refuses.
            let refusals: [([Int32], [KeyValueCache.Segment], String)] = [
                ([1], [.init(slot: 1, count: 1)], "slot 1 holds 6 positions; 1 more exceed its 6"),
                ([1, 2], [.init(slot: 0, count: 1), .init(slot: 0, count: 1)], "a slot appears twice"),
                ([1], [.init(slot: 4, count: 1)], "slot 4 is not one of the 4"),
                ([1, 2], [.init(slot: 0, count: 1)], "the segments hold 1 tokens, not the 2 given"),
            ]
            for (tokens, segments, message) in refusals {
                XCTAssertThrowsError(try model.nextTokenLogits(tokens: tokens, segments: segments, cache: cache)) { error in
                    XCTAssertTrue("\(error)".contains(message), "\(error)")
                }
            }
        }
        XCTAssertThrowsError(try KeyValueCache(model: TransformerModel(configuration: configuration(.gpt), backend: cpu, seed: 1), slots: 1, capacity: 1000)) {
            XCTAssertTrue("\($0)".contains("exceed the model's context length"), "\($0)")
        }
    }

    /// Decode steps replayed from a recording (CPU: the recorded work run again; a CUDA graph on the GPU) give what
    /// steps run op by op give, with batch sizes changing and slots reordered; each batch size is recorded at its
    /// second step, padded to the next recorded size (3 sequences run as 4, the fourth over the scratch row, its
    /// logits dropped). A backend that records nothing says so, and its steps run as they come, unpadded.
    func testRecordedDecodeStepsGiveWhatStepsRunOpByOpGive() throws {
        let recording = CPUBackend(recordsWork: true)
        for family in ModelConfiguration.Family.allCases {
            let models = try [cpu, recording].map { try TransformerModel(configuration: configuration(family), dtype: .float64, backend: $0, seed: 4) }
            let caches = try models.map { try KeyValueCache(model: $0, slots: 3, capacity: 8) }
            for (model, cache) in zip(models, caches) {
                _ = try model.nextTokenLogits(tokens: [3, 1, 4], segments: [.init(slot: 0, count: 1), .init(slot: 1, count: 2)], cache: cache)
            }
            let steps: [[Int]] = [[0, 1], [0, 1], [1, 0], [0, 1, 2], [0, 1, 2], [2, 0, 1], [0]]
            var last: [Int32] = [9, 8, 7]
            for (index, slots) in steps.enumerated() {
                let tokens = slots.map { last[$0] }, segments = slots.map { KeyValueCache.Segment(slot: $0, count: 1) }
                let logits = try zip(models, caches).map { model, cache in
                    try model.backend.doubles(model.nextTokenLogits(tokens: tokens, segments: segments, cache: cache))
                }
                XCTAssertEqual(logits[1], logits[0], "\(family) step \(index + 1)")
                let vocabulary = models[0].configuration.vocabularySize
                for (row, slot) in slots.enumerated() {
                    let scores = logits[0][(row * vocabulary)..<((row + 1) * vocabulary)]
                    last[slot] = Int32(scores.indices.max { scores[$0] < scores[$1] }! - row * vocabulary)
                }
            }
            XCTAssertEqual(caches[1].lengths, caches[0].lengths)
            XCTAssertEqual(Set(caches[1].recordedSteps.steps.keys), [2, 4], "\(family): each padded batch size recorded once it repeats")
            XCTAssertNil(caches[1].unrecordedReason)
            XCTAssertEqual(caches[0].unrecordedReason, "cpu records no work")
            XCTAssertTrue(caches[0].recordedSteps.steps.isEmpty)
        }
    }

    /// Recorded decode steps come in few batch sizes: 1, 2, 4, 8, then multiples of 8.
    func testDecodeStepsArePaddedToFewBatchSizes() {
        let padded = (1...40).map(RecordedDecodeSteps.paddedBatch)
        XCTAssertEqual(Array(padded[0..<9]), [1, 2, 4, 4, 8, 8, 8, 8, 16])
        XCTAssertEqual(padded[16], 24)
        XCTAssertEqual(padded[31], 32)
        XCTAssertEqual(padded[32], 40)
        XCTAssertEqual(Set(padded[0..<32]).count, 7, "1…32 sequences: 7 recordings, within the 8 kept")
        XCTAssertTrue(zip(1...40, padded).allSatisfy { $1 >= $0 })
    }

    /// A cache keeps the most recently used recorded steps only (each holds its step's memory).
    func testRecordedStepsBeyondTheLimitAreDroppedLeastRecentlyUsedFirst() throws {
        final class Work: RecordedWork {
            let output: Tensor
            init(_ output: Tensor) { self.output = output }
            func replay() throws -> Tensor { output }
        }
        let model = try TransformerModel(configuration: configuration(.gpt), backend: cpu, seed: 1)
        let inputs = try DecodeStepValues(tokens: [1], segments: [.init(slot: 0, count: 1)], cache: KeyValueCache(model: model, slots: 1, capacity: 4),
                                          learnedPositions: true, rotary: false).upload(to: cpu)
        let steps = RecordedDecodeSteps(limit: 3)
        let output = try cpu.zeros([1], dtype: .float32)
        for batch in 1...3 { steps.keep((inputs, Work(output)), for: batch) }
        XCTAssertNotNil(steps.step(1), "batch 1 used again: now the most recent")
        steps.keep((inputs, Work(output)), for: 4)
        XCTAssertEqual(Set(steps.steps.keys), [1, 3, 4], "batch 2, the least recently used, dropped")
        steps.keep((inputs, Work(output)), for: 3)
        XCTAssertEqual(Set(steps.steps.keys), [1, 3, 4], "keeping a batch size again replaces it")
    }

    func testMergedInferenceMatchesTheAdaptedModel() throws {
        let model = try TransformerModel(configuration: configuration(.llama), dtype: .float64, backend: cpu, seed: 5)
        try model.convertToSLoPe()
        let adapterParameters = try model.attachAdapters(rank: 2, seed: 6)
        XCTAssertEqual(adapterParameters.count, 2 * 14)
        for parameter in adapterParameters where parameter.name.hasSuffix(".up") {
            try cpu.copy(randomTensor(cpu, parameter.value.shape, dtype: .float64, seed: 7, std: 0.1), into: parameter.value)
        }
        for layer in model.sparseLinears { try layer.adapter!.pruneDown(pattern: layer.weight.pattern) }
        let tokens = try cpu.tensor([1, 2, 3, 4] as [Int32], shape: [4])
        let adapted = try cpu.doubles(model.logits(tokens: tokens, batch: 1, sequence: 4))
        try model.mergeForInference()
        XCTAssertTrue(model.blockProjections.allSatisfy { $0.module is MergedSparseLinear })
        assertClose(try cpu.doubles(model.logits(tokens: tokens, batch: 1, sequence: 4)), adapted, rtol: 1e-9, atol: 1e-12)
    }

    func testSparsityPlanChoices() throws {
        let plan = SparsityPlan(leadingBlocks: 1, leadingPattern: try NMPattern(n: 2, m: 8), skipLastBlock: true)
        XCTAssertEqual(plan.pattern(block: 0, of: 3, isAttention: false, inFeatures: 64, outFeatures: 256), try NMPattern(n: 2, m: 8))
        XCTAssertEqual(plan.pattern(block: 1, of: 3, isAttention: true, inFeatures: 64, outFeatures: 64), .twoFour)
        XCTAssertNil(plan.pattern(block: 2, of: 3, isAttention: false, inFeatures: 64, outFeatures: 64), "last block skipped")
        XCTAssertNil(plan.pattern(block: 1, of: 3, isAttention: false, inFeatures: 64, outFeatures: 384), "aspect ratio 6 > 5 stays dense")
        XCTAssertNil(SparsityPlan(skipAttention: true).pattern(block: 0, of: 1, isAttention: true, inFeatures: 8, outFeatures: 8))
        XCTAssertNil(SparsityPlan().pattern(block: 0, of: 1, isAttention: false, inFeatures: 8, outFeatures: 6), "6 rows do not split into groups of 4")
    }

    func testNamedConfigurationsAndSizes() throws {
        for (name, configuration) in ModelConfiguration.named {
            XCTAssertNoThrow(try configuration.validate(), name)
        }
        // Published sizes: GPT-2 small 124M, OPT-1.3B 1.32B, LLaMA 3.1 8B 8.03B.
        XCTAssertEqual(Double(try ModelConfiguration.named("gpt2").parameterCount) / 1e6, 124.4, accuracy: 0.5)
        XCTAssertEqual(Double(try ModelConfiguration.named("opt-1.3b").parameterCount) / 1e9, 1.316, accuracy: 0.005)
        XCTAssertEqual(Double(try ModelConfiguration.named("llama-8b").parameterCount) / 1e9, 8.03, accuracy: 0.01)
        XCTAssertThrowsError(try ModelConfiguration.named("gpt5")) { error in
            XCTAssertTrue("\(error)".contains("opt-1.3b"), "the error lists the names")
        }
    }
}
