import SLoPe
import SlopeTestSupport
import XCTest

final class LowRankAdapterTests: XCTestCase {
    let cpu = CPUBackend()

    func testStartsAsIdentityContribution() throws {
        var generator = SeededGenerator(seed: 1)
        let layer = try SparseLinear(inFeatures: 16, outFeatures: 8, backend: cpu, generator: &generator)
        let x = try randomTensor(cpu, [3, 16], seed: 2)
        let before = try layer.forward(x)
        let adapter = try layer.attachAdapter(rank: 2, generator: &generator)
        XCTAssertEqual(adapter.down.value.shape, [16, 2])
        XCTAssertEqual(adapter.up.value.shape, [2, 8])
        XCTAssertEqual(adapter.scale, 0.5)
        try assertClose(layer.forward(x), before, rtol: 0, atol: 0, backend: cpu, "R = 0 leaves the output unchanged")
        XCTAssertEqual(layer.parameters.map(\.name), ["linear.bias", "linear.adapter.down", "linear.adapter.up"])
    }

    func testFiniteDifferencesOfDownUpAndInput() throws {
        var generator = SeededGenerator(seed: 3)
        let adapter = try LowRankAdapter(name: "a", inFeatures: 6, outFeatures: 5, rank: 2, dtype: .float64, backend: cpu, generator: &generator)
        try cpu.copy(randomTensor(cpu, [2, 5], dtype: .float64, seed: 4), into: adapter.up.value)  // non-zero R
        let x = randomValues(4 * 6, seed: 5), weights = randomValues(4 * 5, seed: 6)
        func loss(_ input: [Double] = []) throws -> Double {
            weightedSum(try cpu.doubles(adapter.forward(cpu.tensor(input.isEmpty ? x : input, shape: [4, 6], dtype: .float64))), weights)
        }
        _ = try adapter.forward(cpu.tensor(x, shape: [4, 6], dtype: .float64))
        let dx = try cpu.doubles(adapter.backward(cpu.tensor(weights, shape: [4, 5], dtype: .float64)))
        assertClose(dx, try finiteDifferenceGradient(at: x) { try loss($0) }, rtol: 1e-6, atol: 1e-8, "dX")
        for parameter in adapter.parameters {
            let numeric = try finiteDifferenceGradient(of: parameter.value, backend: cpu) { try loss() }
            assertClose(try cpu.doubles(parameter.gradient!), numeric, rtol: 1e-6, atol: 1e-8, parameter.name)
        }
    }

    func testSparseLinearWithAdapterGradients() throws {
        var generator = SeededGenerator(seed: 7)
        let layer = try SparseLinear(inFeatures: 8, outFeatures: 8, dtype: .float64, backend: cpu, generator: &generator)
        let adapter = try layer.attachAdapter(rank: 2, generator: &generator)
        try cpu.copy(randomTensor(cpu, [2, 8], dtype: .float64, seed: 8), into: adapter.up.value)
        let x = try randomTensor(cpu, [3, 8], dtype: .float64, seed: 9)
        let dy = try randomTensor(cpu, [3, 8], dtype: .float64, seed: 10)
        let y = try layer.forward(x)
        let expectedY = try cpu.add(
            cpu.gemm(x, layer.weight.prunedDense(), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: layer.bias!.value),
            cpu.scale(cpu.matmul(cpu.matmul(x, adapter.down.value), adapter.up.value), by: 0.5))
        try assertClose(y, expectedY, rtol: 1e-12, atol: 1e-12, backend: cpu)
        let dx = try layer.backward(dy)
        let expectedDX = try cpu.add(
            cpu.matmul(dy, layer.weight.doublePrunedDense()),
            cpu.scale(cpu.matmul(cpu.matmul(dy, adapter.up.value, transposeB: true), adapter.down.value, transposeB: true), by: 0.5))
        try assertClose(dx, expectedDX, rtol: 1e-12, atol: 1e-12, backend: cpu)
    }

    func testMergedInferenceMatchesUnmergedWhenDownIsNM() throws {
        for dtype in [DType.float32, .float64] {
            var generator = SeededGenerator(seed: 11)
            let layer = try SparseLinear(inFeatures: 32, outFeatures: 16, dtype: dtype, backend: cpu, generator: &generator)
            let adapter = try layer.attachAdapter(rank: 4, generator: &generator)
            try cpu.copy(randomTensor(cpu, [4, 16], dtype: dtype, seed: 12), into: adapter.up.value)
            try adapter.pruneDown(pattern: .twoFour)
            // Each column of L keeps 2 of every 4 consecutive din entries.
            let l = try cpu.doubles(cpu.transpose(adapter.down.value))
            for group in stride(from: 0, to: l.count, by: 4) {
                XCTAssertEqual(l[group..<(group + 4)].filter { $0 != 0 }.count, 2)
            }
            let x = try randomTensor(cpu, [2, 7, 32], dtype: dtype, seed: 13)
            let merged = try layer.merged()
            XCTAssertEqual(merged.merged.shape, [20, 32])
            XCTAssertEqual(merged.rank, 4)
            let tolerance = dtype == .float64 ? 1e-12 : 1e-5
            try assertClose(merged.forward(x), layer.forward(x), rtol: tolerance, atol: tolerance, backend: cpu, "\(dtype)")
        }
    }

    func testMergedWithoutAdapterIsThePlainSparseLayer() throws {
        var generator = SeededGenerator(seed: 14)
        let layer = try SparseLinear(inFeatures: 16, outFeatures: 8, backend: cpu, generator: &generator)
        let x = try randomTensor(cpu, [5, 16], seed: 15)
        try assertClose(layer.merged().forward(x), layer.forward(x), rtol: 1e-6, atol: 1e-6, backend: cpu)
    }

    func testRankMustFit() throws {
        var generator = SeededGenerator(seed: 16)
        let layer = try SparseLinear(inFeatures: 8, outFeatures: 8, backend: cpu, generator: &generator)
        XCTAssertThrowsError(try layer.attachAdapter(rank: 0, generator: &generator))
        XCTAssertThrowsError(try layer.attachAdapter(rank: 9, generator: &generator))
    }
}
