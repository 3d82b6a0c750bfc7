import SLoPe
import SlopeTestSupport
import XCTest

/// The BERT-style encoder: finite-difference gradients of the whole model with padded sequences (Float64), what
/// padding may and may not change, and a tiny encoder learning masked-language modelling on the CPU.
final class EncoderTests: XCTestCase {
    let cpu = CPUBackend()
    let configuration = EncoderConfiguration(vocabularySize: 13, contextLength: 8, layers: 2, hiddenSize: 8, heads: 2, intermediateSize: 16)

    /// Two sequences of 5 positions, the second padded after 3 tokens; predictions at four positions.
    func batch() throws -> (tokens: Tensor, types: Tensor, labels: [Int32], lengths: [Int]) {
        let tokens: [Int32] = [1, 5, 7, 2, 9, 1, 4, 2, 0, 0]
        let types: [Int32] = [0, 0, 0, 1, 1, 0, 0, 1, 0, 0]
        let labels: [Int32] = [-100, 6, -100, -100, 3, -100, 11, 8, -100, -100]
        return (try cpu.tensor(tokens, shape: [10]), try cpu.tensor(types, shape: [10]), labels, [5, 3])
    }

    /// `parameter`'s gradient at `samples` evenly spread elements against central differences of `loss`.
    func checkGradient(_ parameter: Parameter, samples: Int, _ label: String, loss: () throws -> Double) throws {
        guard let gradient = parameter.gradient else { return XCTFail("\(label) got no gradient") }
        let analytic = try cpu.doubles(gradient), original = try cpu.doubles(parameter.value)
        for index in Set((0..<samples).map { $0 * original.count / samples }).sorted() {
            func shifted(_ delta: Double) throws -> Double {
                var point = original
                point[index] += delta
                try cpu.copy(cpu.tensor(point, shape: parameter.value.shape, dtype: .float64), into: parameter.value)
                return try loss()
            }
            let numeric = (try shifted(1e-6) - shifted(-1e-6)) / 2e-6
            try cpu.copy(cpu.tensor(original, shape: parameter.value.shape, dtype: .float64), into: parameter.value)
            assertClose([analytic[index]], [numeric], rtol: 1e-5, atol: 1e-8, "\(label)[\(index)]")
        }
    }

    /// The pretraining loss (masked LM + next sentence) of `model` on the test batch, as a function to differentiate.
    func pretrainingLoss(of model: EncoderModel) throws -> () throws -> Double {
        let (tokens, types, labels, lengths) = try batch()
        return {
            let losses = try model.pretrainingLosses(
                tokens: tokens, tokenTypes: types, labels: labels, nextSentenceLabels: [0, 1], lengths: lengths, batch: 2, sequence: 5)
            return losses.maskedLM + losses.nextSentence
        }
    }

    /// Every parameter's gradient against central differences of the pretraining loss (masked LM + next sentence, with
    /// exact GELU and the tanh pooler), at a few elements each.
    func testEncoderGradients() throws {
        let model = try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 1)
        // Non-trivial norms and biases, so their gradients are tested where they matter.
        var generator = SeededGenerator(seed: 9)
        for parameter in model.parameters where parameter.value.rank == 1 {
            try cpu.copy(cpu.randomNormal(parameter.value.shape, std: 0.3, dtype: .float64, using: &generator), into: parameter.value)
            if parameter.name.hasSuffix("LayerNorm.weight") { try cpu.copy(cpu.add(parameter.value, cpu.tensor([Double](repeating: 1, count: parameter.value.count), shape: parameter.value.shape, dtype: .float64)), into: parameter.value) }
        }
        let loss = try pretrainingLoss(of: model)
        _ = try loss()
        try model.backward()
        XCTAssertEqual(model.parameters.count, 5 + 16 * 2 + 5 + 4, "embeddings (3 tables, norm), 16 per block, the MLM head's 5, pooler and NSP")
        XCTAssertEqual(model.configuration.activation, .geluExact)
        for parameter in model.parameters { try checkGradient(parameter, samples: 5, parameter.name, loss: loss) }
    }

    /// With dropout on — hidden and attention probabilities — (a fixed seed, so every evaluation drops the same
    /// elements) the gradients still equal central differences; the dropped elements differ from pass to pass with the
    /// seed, and no seed means no dropout.
    func testEncoderGradientsWithDropout() throws {
        var withDropout = configuration
        withDropout.hiddenDropout = 0.3
        withDropout.attentionDropout = 0.3
        let model = try EncoderModel(configuration: withDropout, dtype: .float64, backend: cpu, seed: 1)
        let (tokens, types, _, lengths) = try batch()
        func hidden() throws -> [Float] { try cpu.floats(model.encode(tokens: tokens, tokenTypes: types, lengths: lengths, batch: 2, sequence: 5)) }
        let plain = try hidden()
        model.dropoutSeed = 11
        let dropped = try hidden()
        XCTAssertNotEqual(dropped, plain)
        try model.setDropout(0)
        let attentionOnly = try hidden()
        XCTAssertNotEqual(attentionOnly, plain, "the attention probabilities alone are dropped")
        try model.setAttentionDropout(0)
        XCTAssertEqual(try hidden(), plain)
        try model.setDropout(0.3)
        try model.setAttentionDropout(0.3)
        XCTAssertEqual(model.configuration.attentionDropout, 0.3)
        XCTAssertEqual(try hidden(), dropped, "the same seed drops the same elements")
        model.dropoutSeed = 12
        XCTAssertNotEqual(try hidden(), dropped)
        model.dropoutSeed = nil
        XCTAssertEqual(try hidden(), plain, "no seed: no dropout")
        model.dropoutSeed = 11
        let loss = try pretrainingLoss(of: model)
        _ = try loss()
        try model.backward()
        for parameter in model.parameters where parameter.name.contains("embeddings") || parameter.name.contains("layer.0.attention") {
            try checkGradient(parameter, samples: 4, parameter.name, loss: loss)
        }
    }

    /// An attention dropout outside [0, 1) is refused by the configuration's check, by name.
    func testAttentionDropoutOutsideItsRangeIsRefused() throws {
        var bad = configuration
        bad.attentionDropout = 1.5
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("attentionDropout must be in [0, 1), not 1.5"), "\($0)") }
        XCTAssertThrowsError(try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 1).setAttentionDropout(-0.1))
    }

    /// Recomputed activations (each block's input kept, the rest recomputed in backward) give the same gradients, with
    /// dropout on: the recomputation drops what the first forward dropped.
    func testRecomputedActivationsGiveTheSameGradients() throws {
        var withDropout = configuration
        withDropout.hiddenDropout = 0.3
        withDropout.attentionDropout = 0.3
        let models = try (0..<2).map { _ in try EncoderModel(configuration: withDropout, dtype: .float64, backend: cpu, seed: 3) }
        models[1].recomputesActivations = true
        XCTAssertTrue(models[1].blocks.allSatisfy(\.recomputesActivations))
        for model in models {
            model.dropoutSeed = 21
            _ = try pretrainingLoss(of: model)()
            try model.backward()
        }
        for (plain, recomputed) in zip(models[0].parameters, models[1].parameters) {
            let (a, b) = (try cpu.doubles(XCTUnwrap(plain.gradient)), try cpu.doubles(XCTUnwrap(recomputed.gradient)))
            assertClose(b, a, rtol: 1e-12, atol: 1e-14, plain.name)
        }
    }

    /// A padded sequence's real positions are what the same sequence gives unpadded, whatever the padding holds;
    /// without the lengths the padding would be attended to.
    func testPaddingIsNeverAttendedTo() throws {
        let model = try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 2)
        let real: [Int32] = [1, 4, 6], types: [Int32] = [0, 0, 1]
        let alone = try cpu.doubles(model.encode(tokens: cpu.tensor(real, shape: [3]), tokenTypes: cpu.tensor(types, shape: [3]), lengths: nil, batch: 1, sequence: 3))
        for padding in [[0, 0] as [Int32], [12, 3]] {
            let tokens = try cpu.tensor(real + padding, shape: [5]), tokenTypes = try cpu.tensor(types + [0, 0], shape: [5])
            let padded = try cpu.doubles(model.encode(tokens: tokens, tokenTypes: tokenTypes, lengths: [3], batch: 1, sequence: 5))
            assertClose(Array(padded[0..<(3 * 8)]), alone, rtol: 1e-12, atol: 1e-12, "padding \(padding)")
        }
        let unmasked = try cpu.doubles(model.encode(
            tokens: cpu.tensor(real + [12, 3], shape: [5]), tokenTypes: cpu.tensor(types + [0, 0], shape: [5]), lengths: nil, batch: 1, sequence: 5))
        XCTAssertGreaterThan(zip(unmasked[0..<(3 * 8)], alone).map { abs($0 - $1) }.max()!, 1e-6, "attending to padding changes the output")
        XCTAssertThrowsError(try model.maskedLanguageModelLoss(
            tokens: cpu.tensor(real, shape: [3]), tokenTypes: cpu.tensor(types, shape: [3]), labels: [-100, -100, -100], lengths: nil, batch: 1, sequence: 3))
    }

    /// Blocks run on the real tokens alone (the default) give the losses and gradients of blocks run on every padded
    /// position, and zero rows at the padding; so they do with recomputed activations.
    func testRemovingPaddingChangesNothingButTheWork() throws {
        let (tokens, types, _, lengths) = try batch()
        for recomputes in [false, true] {
            let models = try (0..<2).map { _ in try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 4) }
            models[0].removesPadding = false
            models[1].recomputesActivations = recomputes
            let hidden = try models.map { try cpu.doubles($0.encode(tokens: tokens, tokenTypes: types, lengths: lengths, batch: 2, sequence: 5)) }
            assertClose(Array(hidden[1][0..<(8 * 8)]), Array(hidden[0][0..<(8 * 8)]), rtol: 1e-12, atol: 1e-14, "real rows")
            XCTAssertEqual(Array(hidden[1][(8 * 8)...]), [Double](repeating: 0, count: 2 * 8), "the padding's rows")
            XCTAssertGreaterThan(hidden[0][(8 * 8)...].map(abs).max()!, 0.1, "run on every position, the padding's rows are not zero")
            let losses = try models.map { model in
                let loss = try pretrainingLoss(of: model)()
                try model.backward()
                return loss
            }
            XCTAssertEqual(losses[1], losses[0], accuracy: 1e-12)
            for (padded, unpadded) in zip(models[0].parameters, models[1].parameters) {
                let (a, b) = (try cpu.doubles(XCTUnwrap(padded.gradient)), try cpu.doubles(XCTUnwrap(unpadded.gradient)))
                assertClose(b, a, rtol: 1e-10, atol: 1e-13, "\(padded.name), recomputed: \(recomputes)")
            }
        }
        // The unpadded row count is rounded up (GEMM shapes repeat across batches), never past the padded form; the
        // copied padding rows never reach the result of pad.
        XCTAssertEqual([1, 263, 2047, 2048, 4095, 4096, 6000].map(UnpaddedRows.rowMultiple(realRows:)), [128, 128, 128, 256, 256, 512, 512])
        let sizes = try [([3, 60, 200], 300), ([300, 300, 1], 300)].map { lengths, sequence in
            try XCTUnwrap(UnpaddedRows(lengths: lengths, batch: 3, sequence: sequence, backend: cpu))
        }
        XCTAssertEqual(sizes.map(\.count), [384, 640])
        XCTAssertEqual(sizes.map(\.rows.count), [263, 601])
        let rows = try cpu.tensor((0..<(384 * 2)).map { Double($0 + 1) }, shape: [384, 2], dtype: .float64)
        let padded = try cpu.doubles(sizes[0].pad(rows))
        XCTAssertEqual(padded.count, 900 * 2)
        XCTAssertEqual(padded.filter { $0 != 0 }.count, 263 * 2, "the real rows alone")
        XCTAssertEqual(try cpu.doubles(sizes[0].unpad(sizes[0].pad(rows))).prefix(263 * 2), ArraySlice((1...(263 * 2)).map(Double.init)))
        let model = try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 4)
        XCTAssertThrowsError(try model.encode(tokens: tokens, tokenTypes: types, lengths: [5, 0], batch: 2, sequence: 5)) { error in
            XCTAssertTrue("\(error)".contains("lengths in 1 … 5"), "\(error)")
        }
    }

    /// A tiny encoder learns to fill in masked tokens of sequences with structure — the first half of each one token,
    /// the second half another, so a masked token follows from the tokens around it and its position — with AdamW:
    /// the masked-token loss falls well below chance (400 steps) and most predictions on fresh sequences are right.
    func testATinyEncoderLearnsMaskedLanguageModelling() throws {
        let c = EncoderConfiguration(vocabularySize: 40, contextLength: 16, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64)
        let model = try EncoderModel(configuration: c, backend: cpu, seed: 3)
        let optimizer = AdamW(parameters: model.parameters, configuration: .init(learningRate: 5e-3, weightDecay: 0), backend: cpu)
        var generator = SeededGenerator(seed: 4)
        let (batch, sequence) = (16, 12)
        let mask: Int32 = 39
        func makeBatch() throws -> (Tensor, Tensor, [Int32], [Int], [Int32]) {
            var tokens: [Int32] = [], labels: [Int32] = [], lengths: [Int] = []
            for _ in 0..<batch {
                let length = 8 + Int(generator.next() % 5), first = Int32(1 + generator.next() % 38), second = Int32(1 + generator.next() % 38)
                let run = (0..<length).map { $0 < length / 2 ? first : second }
                for (position, token) in run.enumerated() {
                    let masked = position > 0 && position < length - 1 && generator.next() % 4 == 0
                    tokens.append(masked ? mask : token)
                    labels.append(masked ? token : -100)
                }
                tokens += [Int32](repeating: 0, count: sequence - length)
                labels += [Int32](repeating: -100, count: sequence - length)
                lengths.append(length)
            }
            if !labels.contains(where: { $0 != -100 }) { labels[1] = tokens[1]; tokens[1] = mask }
            return (try cpu.tensor(tokens, shape: [batch * sequence]), try cpu.tensor([Int32](repeating: 0, count: batch * sequence), shape: [batch * sequence]),
                    labels, lengths, tokens)
        }
        var first = 0.0, last = 0.0
        for step in 0..<400 {
            let (tokens, types, labels, lengths, _) = try makeBatch()
            let loss = try model.maskedLanguageModelLoss(tokens: tokens, tokenTypes: types, labels: labels, lengths: lengths, batch: batch, sequence: sequence)
            if step == 0 { first = loss }
            last = step >= 390 ? last + loss / 10 : last
            try model.backward()
            try optimizer.step()
            try optimizer.zeroGradients()
        }
        XCTAssertGreaterThan(first, 2.5, "starts near chance (ln 40 ≈ 3.7)")
        XCTAssertLessThan(last, 1.5, "learned: the last ten steps' loss, against ln 40 ≈ 3.7 at chance")
        // On fresh sequences, the argmax at masked positions is mostly the right token.
        let (tokens, types, labels, lengths, _) = try makeBatch()
        let hidden = try model.encode(tokens: tokens, tokenTypes: types, lengths: lengths, batch: batch, sequence: sequence)
        let rows = labels.indices.filter { labels[$0] != -100 }
        let predicted = try cpu.int32s(cpu.argmaxRows(model.maskedLanguageModelLogits(hidden, rows: rows)))
        let right = zip(predicted, rows.map { labels[$0] }).filter { $0 == $1 }.count
        XCTAssertGreaterThan(Double(right) / Double(rows.count), 0.6, "\(right) of \(rows.count) masked tokens right")
    }

    /// SLoPe conversion works on encoders as on decoders: every block linear 2:4, trained with SparseAdamW beside
    /// AdamW for the dense rest, the loss falls and every sparse weight keeps its 2:4 mask; merged with adapters for
    /// inference, the encoder computes what the adapted one does.
    func testSLoPeEncoderTrainsAndMerges() throws {
        let c = EncoderConfiguration(vocabularySize: 40, contextLength: 16, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64)
        let model = try EncoderModel(configuration: c, backend: cpu, seed: 5)
        let report = try model.convertToSLoPe()
        XCTAssertEqual(report.sparseCount, 12, report.summary)
        XCTAssertEqual(model.sparseWeights.count, 12)
        let dense = AdamW(parameters: model.parameters, configuration: .init(learningRate: 5e-3, weightDecay: 0), backend: cpu)
        let sparse = try SparseAdamW(weights: model.sparseWeights, configuration: .init(learningRate: 5e-3, weightDecay: 0), maskChangeFrequency: 10, backend: cpu)
        var generator = SeededGenerator(seed: 6)
        let (batch, sequence) = (8, 10)
        var losses: [Double] = []
        for _ in 0..<150 {
            var tokens: [Int32] = [], labels: [Int32] = []
            for _ in 0..<batch {
                let token = Int32(1 + generator.next() % 38)
                for position in 0..<sequence {
                    let masked = position % 4 == 1
                    tokens.append(masked ? 39 : token)
                    labels.append(masked ? token : -100)
                }
            }
            let types = try cpu.zeros([batch * sequence], dtype: .int32)
            losses.append(try model.maskedLanguageModelLoss(
                tokens: cpu.tensor(tokens, shape: [batch * sequence]), tokenTypes: types, labels: labels, lengths: nil, batch: batch, sequence: sequence))
            try model.backward()
            try dense.step()
            try sparse.step()
            try dense.zeroGradients()
            try sparse.zeroGradients()
        }
        XCTAssertLessThan(losses.suffix(10).reduce(0, +) / 10, losses[0] - 0.7, "the sparse encoder learns: \(losses[0]) → \(losses.suffix(10))")
        for weight in model.sparseWeights {
            let values = try cpu.floats(weight.prunedDense())
            for group in stride(from: 0, to: values.count, by: 4) {
                XCTAssertLessThanOrEqual(values[group..<(group + 4)].filter { $0 != 0 }.count, 2, weight.name)
            }
        }
        // Adapters, then merged inference: the same hidden states and logits (to float rounding).
        _ = try model.attachAdapters(rank: 4, seed: 7)
        for layer in model.sparseLinears {
            try cpu.copy(cpu.randomNormal(layer.adapter!.up.value.shape, std: 0.1, dtype: .float32, using: &generator), into: layer.adapter!.up.value)
            try layer.adapter!.pruneDown(pattern: layer.weight.pattern)  // (merging prunes L N:M; done first, the two forms agree)
        }
        let tokens = try cpu.tensor((0..<sequence).map { Int32($0 + 1) }, shape: [sequence]), types = try cpu.zeros([sequence], dtype: .int32)
        let adapted = try cpu.floats(model.encode(tokens: tokens, tokenTypes: types, lengths: nil, batch: 1, sequence: sequence))
        try model.mergeForInference()
        let merged = try cpu.floats(model.encode(tokens: tokens, tokenTypes: types, lengths: nil, batch: 1, sequence: sequence))
        XCTAssertTrue(model.sparseLinears.isEmpty, "every SLoPe layer is merged")
        XCTAssertLessThan(zip(adapted, merged).map { abs($0 - $1) }.max()!, 1e-4)
    }

    /// The fine-tuning heads' gradients (classification, regression, question answering) against central differences
    /// of their losses, through the encoder (Float64, a padded batch).
    func testTaskHeadGradients() throws {
        let (tokens, types, _, lengths) = try batch()
        for (task, labels) in [(EncoderTaskHead.Task.classification(labels: 3), [2, 0] as [Float]), (.regression, [0.7, -1.2]),
                               (.questionAnswering, [1, 3, 0, 2])] {
            let encoder = try EncoderModel(configuration: configuration, dtype: .float64, backend: cpu, seed: 11)
            let head = try EncoderTaskHead(task: task, encoder: encoder, seed: 12)
            func loss() throws -> Double { try head.loss(tokens: tokens, tokenTypes: types, lengths: lengths, batch: 2, sequence: 5, labels: labels) }
            _ = try loss()
            try head.backward()
            let checked = head.parameters + encoder.parameters.filter { $0.name.contains("layer.1.") || $0.name.contains("pooler") || $0.name.contains("word_embeddings") }
            // (question answering reads no pooler: its parameters get no gradient there)
            for parameter in checked where !(task == .questionAnswering && parameter.name.contains("pooler")) {
                try checkGradient(parameter, samples: 3, "\(task): \(parameter.name)", loss: loss)
            }
            XCTAssertThrowsError(try head.loss(tokens: tokens, tokenTypes: types, lengths: lengths, batch: 2, sequence: 5, labels: [0]))
        }
    }
}
