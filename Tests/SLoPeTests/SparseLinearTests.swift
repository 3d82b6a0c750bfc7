import SLoPe
import SlopeTestSupport
import XCTest

final class SparseLinearTests: XCTestCase {
    let cpu = CPUBackend()

    private func makeLayer(
        _ din: Int, _ dout: Int, pattern: NMPattern = .twoFour, mode: SparseStorageMode = .compressed, dtype: DType = .float32, seed: UInt64 = 1
    ) throws -> SparseLinear {
        var generator = SeededGenerator(seed: seed)
        return try SparseLinear(inFeatures: din, outFeatures: dout, pattern: pattern, mode: mode, dtype: dtype, backend: cpu, generator: &generator)
    }

    func testForwardEqualsDenseMatmulWithMaskedWeights() throws {
        for pattern in [NMPattern.twoFour, try NMPattern(n: 1, m: 4), try NMPattern(n: 2, m: 8), try NMPattern(n: 4, m: 8)] {
            let layer = try makeLayer(32, 16, pattern: pattern)
            let x = try randomTensor(cpu, [2, 5, 32], seed: 2)
            let y = try layer.forward(x)
            XCTAssertEqual(y.shape, [2, 5, 16])
            let expected = try cpu.gemm(x, layer.weight.prunedDense(), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: layer.bias!.value)
            try assertClose(y, expected, rtol: 1e-5, atol: 1e-5, backend: cpu, "\(pattern)")
            // Exactly N of every M weights along din are non-zero.
            let mask = try cpu.uint8s(layer.weight.rowMask())
            for group in stride(from: 0, to: mask.count, by: pattern.m) {
                XCTAssertEqual(mask[group..<(group + pattern.m)].map(Int.init).reduce(0, +), pattern.n)
            }
        }
    }

    /// Adding the input gradient into an existing tensor (the GEMM's beta = 1 on the GPU) gives that tensor plus
    /// backward's result, and the same parameter gradients, for SLoPe layers in both storage modes and dense ones.
    func testBackwardAddingTheInputGradientEqualsBackwardPlusTheTarget() throws {
        var generator = SeededGenerator(seed: 9)
        let layers: [any InputGradientAccumulating] = [
            try makeLayer(24, 16), try makeLayer(24, 16, mode: .simulated),
            try Linear(inFeatures: 24, outFeatures: 16, backend: cpu, generator: &generator),
        ]
        for (index, layer) in layers.enumerated() {
            let x = try randomTensor(cpu, [6, 24], seed: 3), dy = try randomTensor(cpu, [6, 16], seed: 4)
            let start = try randomTensor(cpu, [6, 24], seed: 5)
            _ = try layer.forward(x)
            let expected = try cpu.add(start, layer.backward(dy))
            func gradients() throws -> [[Float]] {
                try layer.parameters.map { try cpu.floats(XCTUnwrap($0.gradient)) } + layer.sparseWeights.map { try cpu.floats(XCTUnwrap($0.gradient)) }
            }
            let firstGradients = try gradients()
            try layer.zeroGradients(cpu)
            let target = try cpu.cast(start, to: .float32)
            try layer.backward(dy, addingInputGradientTo: target)
            try assertClose(target, expected, rtol: 1e-6, atol: 1e-6, backend: cpu, "layer \(index): dx")
            XCTAssertEqual(try gradients(), firstGradients, "layer \(index): parameter gradients")
        }
    }

    func testBackwardUsesDoublePrunedTransposeAndMaskedGradient() throws {
        let layer = try makeLayer(24, 16)
        let x = try randomTensor(cpu, [6, 24], seed: 3)
        let dy = try randomTensor(cpu, [6, 16], seed: 4)
        _ = try layer.forward(x)
        let dx = try layer.backward(dy)
        try assertClose(dx, cpu.matmul(dy, layer.weight.doublePrunedDense()), rtol: 1e-5, atol: 1e-5, backend: cpu, "dX = dY·(W⊙Mc)")
        let denseGradient = try cpu.matmul(dy, x, transposeA: true)
        let expected = try cpu.gatherCompressed(denseGradient, layout: layer.weight.compressedWeight())
        XCTAssertEqual(layer.weight.gradient?.shape, [16, 12], "gradient is stored compressed")
        try assertClose(layer.weight.gradient!, expected, rtol: 1e-5, atol: 1e-5, backend: cpu, "dW at Mr")
        try assertClose(layer.bias!.gradient!, cpu.sumRows(dy), rtol: 1e-6, atol: 1e-6, backend: cpu, "db")
        // Mc ⊆ Mr, and Mc really prunes further (the approximation is not the identity).
        let mr = try cpu.uint8s(layer.weight.rowMask()), mc = try cpu.uint8s(layer.weight.columnMask())
        XCTAssertTrue(zip(mc, mr).allSatisfy { $0 <= $1 })
        XCTAssertLessThan(mc.map(Int.init).reduce(0, +), mr.map(Int.init).reduce(0, +))
    }

    func testSimulatedModeGivesTheSameNumbers() throws {
        let compressed = try makeLayer(32, 24, seed: 5)
        let simulated = try makeLayer(32, 24, mode: .simulated, seed: 5)
        let x = try randomTensor(cpu, [9, 32], seed: 6)
        let dy = try randomTensor(cpu, [9, 24], seed: 7)
        try assertClose(compressed.forward(x), simulated.forward(x), rtol: 1e-5, atol: 1e-5, backend: cpu, "forward")
        try assertClose(compressed.backward(dy), simulated.backward(dy), rtol: 1e-5, atol: 1e-5, backend: cpu, "dX")
        try assertClose(
            cpu.gatherCompressed(simulated.weight.gradient!, layout: compressed.weight.compressedWeight()),
            compressed.weight.gradient!, rtol: 1e-5, atol: 1e-5, backend: cpu, "dW")
        XCTAssertEqual(try cpu.uint8s(compressed.weight.columnMask()), try cpu.uint8s(simulated.weight.columnMask()))
    }

    func testFiniteDifferencesOfWeightBiasAndInput() throws {
        let layer = try makeLayer(8, 8, dtype: .float64, seed: 8)
        let x = randomValues(3 * 8, seed: 9)
        let weights = randomValues(3 * 8, seed: 10)
        let values = layer.weight.values
        func loss() throws -> Double {
            weightedSum(try cpu.doubles(layer.forward(cpu.tensor(x, shape: [3, 8], dtype: .float64))), weights)
        }
        _ = try layer.forward(cpu.tensor(x, shape: [3, 8], dtype: .float64))
        let dx = try cpu.doubles(layer.backward(cpu.tensor(weights, shape: [3, 8], dtype: .float64)))
        // dW (compressed values) and db are exact gradients.
        let numericW = try finiteDifferenceGradient(of: values, backend: cpu, loss)
        assertClose(try cpu.doubles(layer.weight.gradient!), numericW, rtol: 1e-6, atol: 1e-8, "dW")
        let numericB = try finiteDifferenceGradient(of: layer.bias!.value, backend: cpu, loss)
        assertClose(try cpu.doubles(layer.bias!.gradient!), numericB, rtol: 1e-6, atol: 1e-8, "db")
        // dX is the double-pruned approximation: it equals the exact gradient of X·(W⊙Mc)ᵀ, which
        // finite differences of a layer whose weight is W⊙Mc reproduce.
        let exactOfMc = try Linear(weight: layer.weight.doublePrunedDense(), bias: nil, backend: cpu)
        let numericX = try finiteDifferenceGradient(at: x) { point in
            weightedSum(try cpu.doubles(exactOfMc.forward(cpu.tensor(point, shape: [3, 8], dtype: .float64))), weights)
        }
        assertClose(dx, numericX, rtol: 1e-6, atol: 1e-8, "dX")
    }

    func testWhenMcEqualsMrTheInputGradientIsExact() throws {
        // With 2:4 along din and 4 rows whose kept columns are disjoint pairs, Mr already is 2:4 column-wise.
        let rows: [[Double]] = [[5, 4, 0.1, 0.1], [0.1, 0.1, 5, 4], [5, 4, 0.1, 0.1], [0.1, 0.1, 5, 4]]
        let dense = try cpu.tensor(rows.flatMap { $0 }, shape: [4, 4], dtype: .float64)
        let layer = try SparseLinear(converting: Linear(weight: dense, bias: nil, backend: cpu))
        XCTAssertEqual(try cpu.uint8s(layer.weight.rowMask()), try cpu.uint8s(layer.weight.columnMask()))
        let x = randomValues(8, seed: 11), weights = randomValues(8, seed: 12)
        _ = try layer.forward(cpu.tensor(x, shape: [2, 4], dtype: .float64))
        let dx = try cpu.doubles(layer.backward(cpu.tensor(weights, shape: [2, 4], dtype: .float64)))
        let numeric = try finiteDifferenceGradient(at: x) { point in
            weightedSum(try cpu.doubles(layer.forward(cpu.tensor(point, shape: [2, 4], dtype: .float64))), weights)
        }
        assertClose(dx, numeric, rtol: 1e-6, atol: 1e-8)
    }

    func testMemoryReportShowsCompressedStorage() throws {
        let compressed = try makeLayer(64, 32)
        let simulated = try makeLayer(64, 32, mode: .simulated)
        // 2:4 fp32: values half of dense (4096 B) + uint8 indices (1024 B), twice (W and its transpose).
        XCTAssertEqual(compressed.weight.parameterBytes, 2 * (32 * 32 * 4 + 32 * 32))
        XCTAssertEqual(compressed.weight.gradientBytes, 32 * 32 * 4)
        XCTAssertEqual(simulated.weight.gradientBytes, 64 * 32 * 4)
        XCTAssertEqual(compressed.memory.parameterBytes, compressed.weight.parameterBytes + 32 * 4)
        XCTAssertLessThan(compressed.memory.parameterBytes, simulated.memory.parameterBytes)
    }

    func testBadShapesRaiseDocumentedErrors() throws {
        var generator = SeededGenerator(seed: 1)
        XCTAssertThrowsError(try SparseLinear(inFeatures: 10, outFeatures: 8, backend: cpu, generator: &generator)) { error in
            guard case TensorError.notDivisible(_, let dimension, 10, 4) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(dimension.contains("din"))
        }
        XCTAssertThrowsError(try SparseLinear(inFeatures: 8, outFeatures: 6, backend: cpu, generator: &generator)) { error in
            guard case TensorError.notDivisible(_, _, 6, 4) = error else { return XCTFail("\(error)") }
        }
        let layer = try makeLayer(8, 8)
        XCTAssertThrowsError(try layer.backward(cpu.zeros([1, 8], dtype: .float32)))
        XCTAssertThrowsError(try layer.forward(cpu.zeros([2, 12], dtype: .float32))) { error in
            XCTAssertTrue("\(error)".contains("sparseMatmul"), "\(error)")
        }
    }

    /// The original's other masks, simulated: N:M along the output dimension (`--reduction_dim False`; its own
    /// double-pruned transpose, Mc = Mr) and unstructured magnitude masking (the largest |w| of the tensor, Mc = Mr).
    /// They keep what they say, the layer computes with W⊙Mr, the gradient stays on the mask through a step and a
    /// mask re-selection; compressed storage and merging refuse them by name.
    func testOutputDimensionAndUnstructuredMasksAreSimulated() throws {
        var generator = SeededGenerator(seed: 4)
        let linear = try Linear(inFeatures: 16, outFeatures: 8, dtype: .float32, backend: cpu, generator: &generator)
        let dense = try cpu.floats(linear.weight.value)
        for selection in [MaskSelection.outputDimension, .unstructured(sparsity: 0.75)] {
            let layer = try SparseLinear(converting: linear, name: "l", pattern: .twoFour, mode: .simulated, selection: selection)
            let mask = try cpu.uint8s(layer.weight.rowMask())
            XCTAssertEqual(try cpu.uint8s(layer.weight.columnMask()), mask, "\(selection): the backward uses Mr itself")
            switch selection {
            case .outputDimension:  // columns of [8, 16]: groups of 4 rows
                for column in 0..<16 {
                    for group in stride(from: 0, to: 8, by: 4) {
                        XCTAssertEqual((group..<(group + 4)).map { Int(mask[$0 * 16 + column]) }.reduce(0, +), 2)
                    }
                }
            default:
                XCTAssertEqual(mask.filter { $0 == 1 }.count, 32, "a quarter of 128 kept")
                let keptSmallest: Float = mask.indices.filter { mask[$0] == 1 }.map { abs(dense[$0]) }.min()!
                let droppedLargest: Float = mask.indices.filter { mask[$0] == 0 }.map { abs(dense[$0]) }.max()!
                XCTAssertGreaterThanOrEqual(keptSmallest, droppedLargest, "the largest magnitudes are kept")
            }
            let pruned = try cpu.floats(layer.weight.prunedDense())
            let expected: [Float] = dense.indices.map { mask[$0] == 1 ? dense[$0] : 0 }
            XCTAssertEqual(pruned, expected)
            let x = try randomTensor(cpu, [3, 16], seed: 5)
            try assertClose(
                layer.forward(x), cpu.gemm(x, layer.weight.prunedDense(), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: linear.bias!.value),
                rtol: 1e-5, atol: 1e-5, backend: cpu, "\(selection)")
            _ = try layer.backward(randomTensor(cpu, [3, 8], seed: 6))
            let optimizer = try SparseAdamW(weights: [layer.weight], configuration: .init(learningRate: 0.1, weightDecay: 0), maskChangeFrequency: 1, backend: cpu)
            try optimizer.step()
            let stepped = try cpu.floats(layer.weight.prunedDense())
            let outside: [Float] = mask.indices.filter { mask[$0] == 0 }.map { stepped[$0] }
            XCTAssertTrue(outside.allSatisfy { $0 == 0 }, "still zero outside the mask")
            XCTAssertNotEqual(stepped, pruned)
            XCTAssertEqual(try cpu.uint8s(layer.weight.columnMask()), mask, "re-selected, Mc stays Mr")
            XCTAssertThrowsError(try layer.weight.compressedWeight()) { XCTAssertTrue("\($0)".contains("no sparse kernel"), "\($0)") }
            XCTAssertThrowsError(try SparseLinear(converting: linear, name: "l", pattern: .twoFour, mode: .compressed, selection: selection)) {
                XCTAssertTrue("\($0)".contains("needs simulated storage"), "\($0)")
            }
        }
    }
}
