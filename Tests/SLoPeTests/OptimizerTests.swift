import FoundationEssentials
import SLoPe
import SlopeTestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    let cpu = CPUBackend()

    /// SparseAdamW on compressed values must equal plain AdamW on the dense masked weight, and the
    /// double-pruned transpose must follow: refreshed every step, Mc re-selected every 2nd step and kept.
    func testSparseAdamWEqualsDenseAdamWOnMaskedWeights() throws {
        for mode in SparseStorageMode.allCases {
            var generator = SeededGenerator(seed: 1)
            let layer = try SparseLinear(inFeatures: 16, outFeatures: 8, bias: false, mode: mode, dtype: .float64, backend: cpu, generator: &generator)
            let configuration = AdamWConfiguration(learningRate: 0.05, weightDecay: 0.1)
            let sparse = try SparseAdamW(weights: [layer.weight], configuration: configuration, maskChangeFrequency: 2, backend: cpu)
            // The reference: a dense [8, 16] copy of W⊙Mr trained by plain AdamW with masked gradients.
            let reference = Parameter(name: "w", value: try layer.weight.prunedDense())
            let dense = AdamW(parameters: [reference], configuration: configuration, backend: cpu)
            let rowMask = try layer.weight.rowMask()
            var columnMask = try cpu.uint8s(layer.weight.columnMask())
            for step in 1...5 {
                let x = try randomTensor(cpu, [4, 16], dtype: .float64, seed: UInt64(10 + step))
                let dy = try randomTensor(cpu, [4, 8], dtype: .float64, seed: UInt64(20 + step))
                _ = try layer.forward(x)
                _ = try layer.backward(dy)
                try reference.accumulateGradient(cpu.applyMask(cpu.matmul(dy, x, transposeA: true), mask: rowMask), cpu)
                try sparse.step()
                try dense.step()
                try sparse.zeroGradients()
                try dense.zeroGradients()
                try assertClose(layer.weight.prunedDense(), reference.value, rtol: 1e-12, atol: 1e-14, backend: cpu, "\(mode) step \(step) W")
                // Pruned positions stay exactly zero under decay and updates.
                XCTAssertEqual(try cpu.uint8s(layer.weight.rowMask()), try cpu.uint8s(rowMask))
                if sparse.changesMask(atStep: step) {
                    columnMask = try cpu.uint8s(cpu.pruneMask(reference.value, pattern: .twoFour, direction: .columnWise, within: rowMask))
                }
                XCTAssertEqual(try cpu.uint8s(layer.weight.columnMask()), columnMask, "\(mode) step \(step) Mc")
                let expectedTranspose = try cpu.applyMask(reference.value, mask: cpu.tensor(columnMask, shape: [8, 16]))
                try assertClose(layer.weight.doublePrunedDense(), expectedTranspose, rtol: 1e-12, atol: 1e-14, backend: cpu, "\(mode) step \(step) W⊙Mc")
            }
            XCTAssertEqual(sparse.stateBytes, mode == .compressed ? 2 * 8 * 8 * 8 : 2 * 8 * 16 * 8, "moments have the compressed size")
        }
    }

    func testMaskChangeIsKeptAfterwards() throws {
        // Without a re-selection, Mc never changes even as the weights move far.
        var generator = SeededGenerator(seed: 2)
        let layer = try SparseLinear(inFeatures: 16, outFeatures: 16, bias: false, backend: cpu, generator: &generator)
        let keep = try SparseAdamW(weights: [layer.weight], configuration: .init(learningRate: 0.5), maskChangeFrequency: 0, backend: cpu)
        let initial = try cpu.uint8s(layer.weight.columnMask())
        for step in 1...3 {
            _ = try layer.forward(randomTensor(cpu, [8, 16], seed: UInt64(step)))
            _ = try layer.backward(randomTensor(cpu, [8, 16], seed: UInt64(step + 5)))
            try keep.step()
            try keep.zeroGradients()
        }
        XCTAssertEqual(try cpu.uint8s(layer.weight.columnMask()), initial)
        // A re-selection picks the largest current values, and the next plain step keeps that choice.
        let change = try SparseAdamW(weights: [layer.weight], configuration: .init(learningRate: 0), maskChangeFrequency: 1, backend: cpu)
        try change.step()
        let reselected = try cpu.uint8s(layer.weight.columnMask())
        let expected = try cpu.uint8s(cpu.pruneMask(layer.weight.prunedDense(), pattern: .twoFour, direction: .columnWise, within: layer.weight.rowMask()))
        XCTAssertEqual(reselected, expected)
        XCTAssertNotEqual(reselected, initial, "weights moved enough for Mc to change")
        try layer.weight.refreshTranspose(reselectMask: false)
        XCTAssertEqual(try cpu.uint8s(layer.weight.columnMask()), reselected)
    }

    func testGlobalGradientClippingAcrossSparseAndDense() throws {
        var generator = SeededGenerator(seed: 3)
        let layer = try SparseLinear(inFeatures: 8, outFeatures: 8, backend: cpu, generator: &generator)
        _ = try layer.forward(randomTensor(cpu, [4, 8], seed: 4))
        _ = try layer.backward(randomTensor(cpu, [4, 8], seed: 5, std: 10))
        let sparseSquares = try cpu.scalar(cpu.sumOfSquares(layer.weight.gradient!))
        let denseSquares = try cpu.scalar(cpu.sumOfSquares(layer.bias!.gradient!))
        let norm = try clipGradientNorm(parameters: layer.parameters, sparseWeights: layer.sparseWeights, maxNorm: 1, backend: cpu)
        XCTAssertEqual(norm, (sparseSquares + denseSquares).squareRoot(), accuracy: 1e-4)
        XCTAssertGreaterThan(norm, 1)
        let after = try cpu.scalar(cpu.sumOfSquares(layer.weight.gradient!)) + cpu.scalar(cpu.sumOfSquares(layer.bias!.gradient!))
        XCTAssertEqual(after.squareRoot(), 1, accuracy: 1e-4)
        // Below the threshold nothing changes.
        let again = try clipGradientNorm(parameters: layer.parameters, sparseWeights: layer.sparseWeights, maxNorm: 10, backend: cpu)
        XCTAssertEqual(again, 1, accuracy: 1e-4)
        XCTAssertThrowsError(try clipGradientNorm(parameters: [], sparseWeights: [], maxNorm: 0, backend: cpu))
    }

    /// Training clips by passing the factor to the optimizers as a gradient scale: the same step as scaling the
    /// gradients in place first.
    func testClippingThroughTheGradientScaleEqualsClippingInPlace() throws {
        func trainedLayer(scaleInOptimizer: Bool) throws -> [Double] {
            var generator = SeededGenerator(seed: 21)
            let layer = try SparseLinear(inFeatures: 16, outFeatures: 8, backend: cpu, generator: &generator)
            let sparse = try SparseAdamW(weights: layer.sparseWeights, configuration: .init(learningRate: 0.1), backend: cpu)
            let dense = AdamW(parameters: layer.parameters, configuration: .init(learningRate: 0.1), backend: cpu)
            _ = try layer.forward(randomTensor(cpu, [4, 16], seed: 22))
            _ = try layer.backward(randomTensor(cpu, [4, 8], seed: 23, std: 10))
            let norm = try gradientNorm(parameters: layer.parameters, sparseWeights: layer.sparseWeights, backend: cpu)
            let factor = try clippingFactor(norm: norm, maxNorm: 0.5)
            XCTAssertLessThan(factor, 1)
            if scaleInOptimizer {
                try sparse.step(gradientScale: Float(factor))
                try dense.step(gradientScale: Float(factor))
            } else {
                try clipGradientNorm(parameters: layer.parameters, sparseWeights: layer.sparseWeights, maxNorm: 0.5, backend: cpu)
                try sparse.step()
                try dense.step()
            }
            return try cpu.doubles(layer.weight.values) + cpu.doubles(layer.bias!.value)
        }
        let viaScale = try trainedLayer(scaleInOptimizer: true), inPlace = try trainedLayer(scaleInOptimizer: false)
        XCTAssertEqual(viaScale.count, inPlace.count)
        for (a, b) in zip(viaScale, inPlace) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(try clippingFactor(norm: 0.25, maxNorm: 0.5), 1)
        XCTAssertThrowsError(try clippingFactor(norm: 1, maxNorm: -1))
    }

    /// With the `matrices` scope, weight decay shrinks matrices and embeddings but not biases or norm gains.
    func testWeightDecayScope() throws {
        let cpu = CPUBackend()
        for (scope, vectorShrinks) in [(WeightDecayScope.all, true), (.matrices, false)] {
            let matrix = Parameter(name: "w", value: try cpu.tensor([1, 2, 3, 4] as [Float], shape: [2, 2], dtype: .float32))
            let vector = Parameter(name: "b", value: try cpu.tensor([1, 2] as [Float], shape: [2], dtype: .float32))
            for parameter in [matrix, vector] { _ = try parameter.gradientBuffer(cpu) }  // zero gradients: only decay moves them
            let optimizer = AdamW(parameters: [matrix, vector], configuration: .init(learningRate: 0.1, weightDecay: 0.5),
                                  decayScope: scope, backend: cpu)
            try optimizer.step()
            for (actual, expected) in zip(try cpu.floats(matrix.value), [0.95, 1.9, 2.85, 3.8] as [Float]) {
                XCTAssertEqual(actual, expected, accuracy: 1e-6, "\(scope): matrices decay (× (1 − 0.1·0.5))")
            }
            for (actual, expected) in zip(try cpu.floats(vector.value), vectorShrinks ? [0.95, 1.9] : [1, 2] as [Float]) {
                XCTAssertEqual(actual, expected, accuracy: 1e-6, "\(scope): vectors")
            }
        }
        // Options from before these fields decode with the old behaviour (absent keys), and round-trip when set.
        let old = TrainingOptions(steps: 3, sampling: .windows)
        let json = String(decoding: try JSONEncoder().encode(old), as: UTF8.self)
        XCTAssertFalse(json.contains("sampling") || json.contains("weightDecayScope"), json)
        let set = TrainingOptions(steps: 3, sampling: .random, epsilon: 1e-6, weightDecayScope: .matrices)
        XCTAssertEqual(try JSONDecoder().decode(TrainingOptions.self, from: JSONEncoder().encode(set)), set)
        XCTAssertThrowsError(try TrainingOptions(steps: 3, beta2: 1).validate())
    }

    /// bf16 weights of 1 taking an update of 1e-4 (a fortieth of the 2⁻⁸ spacing just below 1): to nearest, the
    /// update is lost every time; stochastically, about 2.6% of the weights step down and the mean moves by the
    /// exact update. Reproducible from the seed, other bits on other steps and tensors, and float32 untouched.
    func testStochasticRoundingKeepsSmallUpdatesOnAverage() throws {
        let n = 1 << 16
        func stepped(_ rounding: WeightRounding?, dtype: DType = .bfloat16, steps: Int = 1) throws -> [Float] {
            let weight = Parameter(name: "w", value: try cpu.tensor(Array(repeating: 1, count: n) as [Float], shape: [n], dtype: dtype))
            let gradient = try weight.gradientBuffer(cpu)
            try cpu.fill(gradient, with: 1)
            // Adam's first normalised step is ±1 per element, so the update is exactly the learning rate.
            let optimizer = AdamW(parameters: [weight], configuration: .init(learningRate: 1e-4, weightDecay: 0),
                                  roundingSeed: rounding == .stochastic ? 7 : nil, backend: cpu)
            for _ in 0..<steps { try optimizer.step() }
            return try cpu.floats(weight.value)
        }
        XCTAssertEqual(Set(try stepped(.nearest)), [1], "to nearest, the update vanishes")
        let once = try stepped(.stochastic)
        XCTAssertEqual(Set(once), [1, 1 - 1.0 / 256], "either neighbour")
        let mean = once.reduce(0.0) { $0 + Double($1) } / Double(n)
        XCTAssertEqual(mean, 1 - 1e-4, accuracy: 8e-6, "unbiased")
        XCTAssertEqual(try stepped(.stochastic), once, "the same seed, the same weights")
        let tenTimes = try stepped(.stochastic, steps: 10).reduce(0.0) { $0 + Double($1) } / Double(n)
        XCTAssertEqual(tenTimes, 1 - 1e-3, accuracy: 2e-5, "ten steps move it ten times as far")
        XCTAssertEqual(Set(try stepped(.stochastic, dtype: .float32)), [1 - 1e-4], "float32 rounds to nearest")

        let seeds = Set((1...50).flatMap { step in (0..<4).map { StochasticRounding.seed(run: 3, step: step, tensor: $0) } })
        XCTAssertEqual(seeds.count, 200, "fresh bits for every step and tensor")
        XCTAssertEqual(StochasticRounding.bfloat16(.infinity, bits: 0xFFFF), .infinity)
        XCTAssertTrue(StochasticRounding.bfloat16(.nan, bits: 0xFFFF).isNaN)
        XCTAssertEqual(StochasticRounding.bfloat16(-1.5, bits: 0xFFFF), -1.5, "exact values stay")

        // Runs from before the option decode as rounding to nearest; new runs round stochastically.
        var old = TrainingOptions(steps: 3, weightRounding: .nearest)
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(old), as: UTF8.self).contains("weightRounding"))
        XCTAssertNil(old.roundingSeed)
        old = try JSONDecoder().decode(TrainingOptions.self, from: JSONEncoder().encode(TrainingOptions(steps: 3)))
        XCTAssertEqual(old.weightRounding, .stochastic)
        XCTAssertNotNil(old.roundingSeed)
    }

    func testLearningRateSchedules() throws {
        let cosine = try LearningRateSchedule(peak: 1, minimum: 0.1, warmupSteps: 10, totalSteps: 110, decay: .cosine)
        XCTAssertEqual(cosine.learningRate(atStep: 1), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 10), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 60), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 110), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 500), 0.1, accuracy: 1e-6)
        let linear = try LearningRateSchedule(peak: 2, warmupSteps: 0, totalSteps: 100, decay: .linear)
        XCTAssertEqual(linear.learningRate(atStep: 25), 1.5, accuracy: 1e-6)
        let constant = try LearningRateSchedule(peak: 3, warmupSteps: 4, totalSteps: 100, decay: .constant)
        XCTAssertEqual(constant.learningRate(atStep: 2), 1.5, accuracy: 1e-6)
        XCTAssertEqual(constant.learningRate(atStep: 99), 3, accuracy: 1e-6)
        // NVIDIA's BERT recipe: warm-up, then peak·(1 − step/total)^0.5 with the progress from step 0.
        let polynomial = try LearningRateSchedule(peak: 6e-3, minimum: 0, warmupSteps: 20, totalSteps: 100, decay: .polynomial)
        XCTAssertEqual(polynomial.learningRate(atStep: 10), 3e-3, accuracy: 1e-9)
        XCTAssertEqual(polynomial.learningRate(atStep: 36), 6e-3 * 0.8, accuracy: 1e-8, "(1 − 0.36)^0.5 = 0.8")
        XCTAssertEqual(polynomial.learningRate(atStep: 100), 0)
        XCTAssertEqual(try LearningRateSchedule(peak: 1, minimum: 0.5, totalSteps: 100, decay: .polynomial).learningRate(atStep: 91), 0.5, "floored at the minimum")
        XCTAssertThrowsError(try LearningRateSchedule(peak: 1, warmupSteps: 20, totalSteps: 10))
        XCTAssertThrowsError(try LearningRateSchedule(peak: 0, totalSteps: 10))
    }
}
