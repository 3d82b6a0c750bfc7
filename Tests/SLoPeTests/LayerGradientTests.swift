import SLoPe
import SlopeTestSupport
import XCTest

/// Finite-difference checks (Float64) of the dense layers' backward passes and gradient accumulation.
final class LayerGradientTests: XCTestCase {
    let cpu = CPUBackend()

    func testLinearInputWeightAndBias() throws {
        var generator = SeededGenerator(seed: 1)
        let layer = try Linear(inFeatures: 5, outFeatures: 3, dtype: .float64, backend: cpu, generator: &generator)
        let x = try randomTensor(cpu, [2, 2, 5], dtype: .float64, seed: 2)
        let weights = randomValues(12, seed: 3)
        func loss() throws -> Double { weightedSum(try cpu.doubles(layer.forward(x)), weights) }
        _ = try layer.forward(x)
        let dx = try layer.backward(cpu.tensor(weights, shape: [2, 2, 3], dtype: .float64))
        XCTAssertEqual(dx.shape, [2, 2, 5])
        assertClose(try cpu.doubles(dx), try finiteDifferenceGradient(of: x, backend: cpu, loss), rtol: 1e-6, atol: 1e-8, "dX")
        for parameter in layer.parameters {
            assertClose(try cpu.doubles(parameter.gradient!), try finiteDifferenceGradient(of: parameter.value, backend: cpu, loss),
                        rtol: 1e-6, atol: 1e-8, parameter.name)
        }
        // A second backward accumulates; zeroGradients clears.
        let once = try cpu.doubles(layer.weight.gradient!)
        _ = try layer.forward(x)
        _ = try layer.backward(cpu.tensor(weights, shape: [2, 2, 3], dtype: .float64))
        assertClose(try cpu.doubles(layer.weight.gradient!), once.map { 2 * $0 }, rtol: 1e-12, atol: 1e-14, "accumulated")
        try layer.zeroGradients(cpu)
        XCTAssertEqual(try cpu.doubles(layer.weight.gradient!), [Double](repeating: 0, count: 15))
    }

    func testLayerNormLayer() throws {
        let layer = try LayerNorm(features: 6, dtype: .float64, backend: cpu)
        try cpu.copy(randomTensor(cpu, [6], dtype: .float64, seed: 4), into: layer.weight.value)
        try cpu.copy(randomTensor(cpu, [6], dtype: .float64, seed: 5), into: layer.bias.value)
        let x = try randomTensor(cpu, [3, 6], dtype: .float64, seed: 6)
        let weights = randomValues(18, seed: 7)
        func loss() throws -> Double { weightedSum(try cpu.doubles(layer.forward(x)), weights) }
        _ = try layer.forward(x)
        let dx = try layer.backward(cpu.tensor(weights, shape: [3, 6], dtype: .float64))
        assertClose(try cpu.doubles(dx), try finiteDifferenceGradient(of: x, backend: cpu, loss), rtol: 1e-6, atol: 1e-8, "dX")
        for parameter in layer.parameters {
            assertClose(try cpu.doubles(parameter.gradient!), try finiteDifferenceGradient(of: parameter.value, backend: cpu, loss),
                        rtol: 1e-6, atol: 1e-8, parameter.name)
        }
    }

    func testEmbeddingActivationAndCrossEntropyChain() throws {
        var generator = SeededGenerator(seed: 8)
        let embedding = try Embedding(vocabularySize: 7, features: 7, std: 1, dtype: .float64, backend: cpu, generator: &generator)
        let activation = ActivationLayer(.gelu, backend: cpu)
        let loss = SoftmaxCrossEntropy(backend: cpu)
        let ids = try cpu.tensor([3, 1, 3, 6] as [Int32], shape: [4])
        let targets = try cpu.tensor([0, 2, -100, 5] as [Int32], shape: [4])
        func value() throws -> Double { try loss.forward(logits: activation.forward(embedding.forward(ids)), targets: targets) }
        _ = try value()
        try embedding.backward(activation.backward(loss.backward()))
        assertClose(try cpu.doubles(embedding.weight.gradient!), try finiteDifferenceGradient(of: embedding.weight.value, backend: cpu, value),
                    rtol: 1e-6, atol: 1e-8, "embedding table")
    }
}
