import SlopeCore
import SlopeTestSupport
import XCTest

/// Finite-difference checks (Float64) of every differentiable op's backward.
final class OpGradientTests: XCTestCase {
    let cpu = CPUBackend()

    func testActivations() throws {
        for kind in Activation.allCases {
            // Keep ReLU's inputs away from its kink at 0, where the derivative is not defined.
            try checkGradient(cpu, shape: [3, 7], seed: 11, "\(kind)", input: kind == .relu ? { i in (Double(i % 9) - 4.5) * 0.3 } : nil,
                forward: { try self.cpu.activation($0, kind) },
                backward: { x, dy in try self.cpu.activationBackward(x, gradient: dy, kind) })
        }
        // Values at a few points (PyTorch's gelu(x) with approximate='none' and 'tanh', tanh).
        let x = try cpu.tensor([-1, 0.5, 2] as [Double], shape: [3], dtype: .float64)
        assertClose(try cpu.doubles(cpu.activation(x, .geluExact)), [-0.15865525393145707, 0.34573123063700656, 1.9544997361036416], rtol: 1e-12)
        assertClose(try cpu.doubles(cpu.activation(x, .gelu)), [-0.15880800939172324, 0.34571400982514394, 1.954597694087775], rtol: 1e-12)
        assertClose(try cpu.doubles(cpu.activation(x, .tanh)), [-0.7615941559557649, 0.46211715726000974, 0.9640275800758169], rtol: 1e-12)
    }

    /// Dropout keeps about 1 − p of the elements, scaled by 1/(1 − p), chosen by the seed alone (so backward is the
    /// same op on the gradient: checked by finite differences); p = 0 is the identity and p ∉ [0, 1) an error.
    func testDropout() throws {
        let x = try cpu.tensor([Float](repeating: 2, count: 20_000), shape: [100, 200], dtype: .float32)
        let y = try cpu.floats(cpu.dropout(x, probability: 0.25, seed: 5))
        let kept = y.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / 20_000, 0.75, accuracy: 0.01, "σ ≈ 0.3%")
        XCTAssertTrue(kept.allSatisfy { abs($0 - 2 / 0.75) < 1e-6 })
        XCTAssertEqual(try cpu.floats(cpu.dropout(x, probability: 0.25, seed: 5)), y)
        XCTAssertNotEqual(try cpu.floats(cpu.dropout(x, probability: 0.25, seed: 6)), y)
        XCTAssertEqual(try cpu.floats(cpu.dropout(x, probability: 0, seed: 5)), try cpu.floats(x))
        XCTAssertThrowsError(try cpu.dropout(x, probability: 1, seed: 5)) { XCTAssertTrue("\($0)".contains("[0, 1)"), "\($0)") }
        try checkGradient(cpu, shape: [4, 9], seed: 12, "dropout",
            forward: { try self.cpu.dropout($0, probability: 0.4, seed: 3) },
            backward: { _, dy in try self.cpu.dropout(dy, probability: 0.4, seed: 3) })
    }

    func testGEMMBothOperands() throws {
        let b = try randomTensor(cpu, [5, 4], dtype: .float64, seed: 1)
        try checkGradient(cpu, shape: [3, 5], seed: 2, "dA",
            forward: { try self.cpu.matmul($0, b) },
            backward: { _, dy in try self.cpu.matmul(dy, b, transposeB: true) })
        let a = try randomTensor(cpu, [3, 5], dtype: .float64, seed: 3)
        try checkGradient(cpu, shape: [5, 4], seed: 4, "dB",
            forward: { try self.cpu.matmul(a, $0) },
            backward: { _, dy in try self.cpu.matmul(a, dy, transposeA: true) })
    }

    func testSoftmax() throws {
        try checkGradient(cpu, shape: [4, 6], seed: 5, "softmax",
            forward: { try self.cpu.softmax($0) },
            backward: { x, dy in try self.cpu.softmaxBackward(output: self.cpu.softmax(x), gradient: dy) })
    }

    func testLayerNormInputWeightAndBias() throws {
        let weight = try randomTensor(cpu, [6], dtype: .float64, seed: 6)
        let bias = try randomTensor(cpu, [6], dtype: .float64, seed: 7)
        try checkGradient(cpu, shape: [4, 6], seed: 8, "dx",
            forward: { try self.cpu.layerNorm($0, weight: weight, bias: bias, epsilon: 1e-5).output },
            backward: { x, dy in
                let saved = try self.cpu.layerNorm(x, weight: weight, bias: bias, epsilon: 1e-5)
                return try self.cpu.layerNormBackward(dy, input: x, weight: weight, saved: saved).input
            })
        let x = try randomTensor(cpu, [4, 6], dtype: .float64, seed: 9)
        try checkGradient(cpu, shape: [6], seed: 10, "dweight",
            forward: { try self.cpu.layerNorm(x, weight: $0, bias: bias, epsilon: 1e-5).output },
            backward: { w, dy in
                let saved = try self.cpu.layerNorm(x, weight: w, bias: bias, epsilon: 1e-5)
                return try self.cpu.layerNormBackward(dy, input: x, weight: w, saved: saved).weight
            })
        try checkGradient(cpu, shape: [6], seed: 12, "dbias",
            forward: { try self.cpu.layerNorm(x, weight: weight, bias: $0, epsilon: 1e-5).output },
            backward: { b, dy in
                let saved = try self.cpu.layerNorm(x, weight: weight, bias: b, epsilon: 1e-5)
                return try self.cpu.layerNormBackward(dy, input: x, weight: weight, saved: saved).bias
            })
    }

    /// A residual dropout needs a residual, and a probability in [0, 1): refused by name before anything is computed.
    func testLayerNormResidualDropoutIsRefusedWithoutAResidualOrOutsideItsRange() throws {
        let x = try randomTensor(cpu, [4, 6], dtype: .float64, seed: 13)
        let weight = try randomTensor(cpu, [6], dtype: .float64, seed: 14), bias = try randomTensor(cpu, [6], dtype: .float64, seed: 15)
        assertThrowsTensorError(try cpu.layerNorm(
            x, adding: nil, droppingResidual: SeededDropout(probability: 0.1, seed: 1), weight: weight, bias: bias, epsilon: 1e-5)) {
            if case .invalidArgument(_, let reason) = $0 { return reason.contains("needs a residual to drop") } else { return false }
        }
        assertThrowsTensorError(try cpu.layerNorm(
            x, adding: x, droppingResidual: SeededDropout(probability: 1, seed: 1), weight: weight, bias: bias, epsilon: 1e-5)) {
            if case .invalidArgument(_, let reason) = $0 { return reason.contains("dropout probability must be in [0, 1), not 1.0") } else { return false }
        }
    }

    func testCrossEntropyWithIgnoredRow() throws {
        let targets = try cpu.tensor([2, -100, 0, 4] as [Int32], shape: [4])
        let logitsValues = randomValues(20, seed: 13)
        let numeric = try finiteDifferenceGradient(at: logitsValues) { point in
            try cpu.scalar(cpu.crossEntropy(logits: cpu.tensor(point, shape: [4, 5], dtype: .float64), targets: targets, ignoreIndex: -100).loss)
        }
        let saved = try cpu.crossEntropy(logits: cpu.tensor(logitsValues, shape: [4, 5], dtype: .float64), targets: targets, ignoreIndex: -100)
        XCTAssertEqual(saved.countedRows, 3)
        let analytic = try cpu.doubles(cpu.crossEntropyBackward(saved, targets: targets, ignoreIndex: -100, scale: 1))
        assertClose(analytic, numeric, rtol: 1e-6, atol: 1e-8)
        XCTAssertEqual(Array(analytic[5..<10]), [0, 0, 0, 0, 0])
        // The loss itself against a direct computation.
        var expected = 0.0
        for (row, target) in [(0, 2), (2, 0), (3, 4)] {
            let line = logitsValues[(row * 5)..<(row * 5 + 5)]
            expected += Double.log(line.map { Double.exp($0) }.reduce(0, +)) - logitsValues[row * 5 + target]
        }
        XCTAssertEqual(try cpu.scalar(saved.loss), expected / 3, accuracy: 1e-12)
    }

    func testEmbeddingScatterAddsRepeatedIDs() throws {
        let ids = try cpu.tensor([1, 3, 1] as [Int32], shape: [3])
        try checkGradient(cpu, shape: [4, 2], seed: 14, "table",
            forward: { try self.cpu.embedding($0, ids: ids) },
            backward: { table, dy in
                let gradient = try self.cpu.zeros(table.shape, dtype: .float64)
                try self.cpu.embeddingBackward(dy, ids: ids, into: gradient)
                return gradient
            })
        assertThrowsTensorError(try cpu.embedding(cpu.zeros([4, 2], dtype: .float32), ids: cpu.tensor([4] as [Int32], shape: [1]))) { error in
            error.description.contains("id 4")
        }
    }

    func testElementwiseArithmeticAndReductions() throws {
        let a = randomValues(10, seed: 15), b = randomValues(10, seed: 16)
        let ta = try cpu.tensor(a, shape: [2, 5], dtype: .float64), tb = try cpu.tensor(b, shape: [2, 5], dtype: .float64)
        assertClose(try cpu.doubles(cpu.add(ta, tb)), zip(a, b).map(+), rtol: 0, atol: 0)
        assertClose(try cpu.doubles(cpu.subtract(ta, tb)), zip(a, b).map(-), rtol: 0, atol: 0)
        assertClose(try cpu.doubles(cpu.multiply(ta, tb)), zip(a, b).map(*), rtol: 0, atol: 0)
        assertClose(try cpu.doubles(cpu.scale(ta, by: 3)), a.map { $0 * 3 }, rtol: 0, atol: 0)
        try cpu.accumulate(ta, into: tb, alpha: 2)
        assertClose(try cpu.doubles(tb), zip(a, b).map { 2 * $0 + $1 }, rtol: 1e-15, atol: 0)
        XCTAssertEqual(try cpu.scalar(cpu.sum(ta)), a.reduce(0, +), accuracy: 1e-12)
        XCTAssertEqual(try cpu.scalar(cpu.sumOfSquares(ta)), a.map { $0 * $0 }.reduce(0, +), accuracy: 1e-12)
        XCTAssertEqual(try cpu.scalar(cpu.maxAbsolute(ta)), a.map(abs).max()!, accuracy: 0)
        assertClose(try cpu.doubles(cpu.sumRows(ta)), (0..<5).map { a[$0] + a[$0 + 5] }, rtol: 1e-15, atol: 0)
        let bias = try cpu.tensor([1, 2, 3, 4, 5] as [Double], shape: [5], dtype: .float64)
        try cpu.accumulateColumnSums(ta, into: bias)
        var expectedBias: [Double] = [1, 2, 3, 4, 5]
        for column in 0..<5 { expectedBias[column] += a[column] + a[column + 5] }
        assertClose(try cpu.doubles(bias), expectedBias, rtol: 1e-15, atol: 0)
        let both: [Double] = a + (try cpu.doubles(tb))
        let squares: Double = both.map { $0 * $0 }.reduce(0, +)
        XCTAssertEqual(try cpu.totalSumOfSquares([ta, tb]), squares, accuracy: 1e-12)
        XCTAssertEqual(try cpu.totalSumOfSquares([]), 0)
        let mask = try cpu.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0] as [UInt8], shape: [2, 5])
        assertClose(try cpu.doubles(cpu.applyMask(ta, mask: mask)), a.enumerated().map { $0.offset % 2 == 0 ? $0.element : 0 }, rtol: 0, atol: 0)
        assertThrowsTensorError(try cpu.add(ta, cpu.zeros([5, 2], dtype: .float64))) { error in
            if case .shapeMismatch("add", _, _) = error { return true }
            return false
        }
    }

    func testLargeReductionsUseEveryThreadCorrectly() throws {
        let n = 300_000
        let x = try cpu.tensor([Float](repeating: 0.5, count: n), shape: [n], dtype: .float32)
        XCTAssertEqual(try cpu.scalar(cpu.sum(x)), Double(n) * 0.5, accuracy: 1e-6)
    }
}
