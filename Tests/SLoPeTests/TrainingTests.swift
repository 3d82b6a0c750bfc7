import SLoPe
import SlopeTestSupport
import XCTest

/// End to end: a two-layer network of SparseLinears (2:4) learns a synthetic classification task,
/// trained with SparseAdamW (weights) + AdamW (biases), clipping, a cosine schedule and mask changes,
/// then with a lazy adapter for the last steps.
final class TrainingTests: XCTestCase {
    let cpu = CPUBackend()

    func testSparseNetworkLearnsTeacherTask() throws {
        let (inputs, hidden, classes, batch) = (16, 64, 4, 64)
        var generator = SeededGenerator(seed: 42)
        let teacher = try randomTensor(cpu, [inputs, classes], seed: 7)
        func makeBatch(_ seed: UInt64) throws -> (Tensor, Tensor) {
            let x = try randomTensor(cpu, [batch, inputs], seed: seed)
            let scores = try cpu.floats(cpu.matmul(x, teacher))
            let labels = (0..<batch).map { row in Int32((0..<classes).max { scores[row * classes + $0] < scores[row * classes + $1] }!) }
            return (x, try cpu.tensor(labels, shape: [batch]))
        }
        let first = try SparseLinear(name: "fc1", inFeatures: inputs, outFeatures: hidden, backend: cpu, generator: &generator)
        let activation = ActivationLayer(.gelu, backend: cpu)
        let second = try SparseLinear(name: "fc2", inFeatures: hidden, outFeatures: classes, backend: cpu, generator: &generator)
        let loss = SoftmaxCrossEntropy(backend: cpu)
        let layers: [any Layer] = [first, second]
        let configuration = AdamWConfiguration(learningRate: 1e-2, weightDecay: 0.01)
        let sparse = try SparseAdamW(weights: layers.flatMap(\.sparseWeights), configuration: configuration, maskChangeFrequency: 50, backend: cpu)
        var dense = AdamW(parameters: layers.flatMap(\.parameters), configuration: configuration, backend: cpu)
        let steps = 300, adapterSteps = 30
        let schedule = try LearningRateSchedule(peak: 1e-2, minimum: 1e-3, warmupSteps: 20, totalSteps: steps)

        func trainStep(_ step: Int) throws -> Double {
            let (x, labels) = try makeBatch(UInt64(1000 + step))
            let value = try loss.forward(logits: second.forward(activation.forward(first.forward(x))), targets: labels)
            _ = try first.backward(activation.backward(second.backward(loss.backward())))
            try clipGradientNorm(parameters: dense.parameters, sparseWeights: sparse.weights, maxNorm: 1, backend: cpu)
            let rate = schedule.learningRate(atStep: step)
            try sparse.step(learningRate: rate)
            try dense.step(learningRate: rate)
            try sparse.zeroGradients()
            try dense.zeroGradients()
            return value
        }
        func evaluate() throws -> Double {
            let (x, labels) = try makeBatch(99)
            return try loss.forward(logits: second.forward(activation.forward(first.forward(x))), targets: labels)
        }

        let initial = try evaluate()
        for step in 1...(steps - adapterSteps) { _ = try trainStep(step) }
        let sparseOnly = try evaluate()
        // Lazy adapters for the last 10% of steps, trained alongside the sparse weights.
        for layer in [first, second] { try layer.attachAdapter(rank: 4, generator: &generator) }
        dense = AdamW(parameters: layers.flatMap(\.parameters), configuration: configuration, backend: cpu)
        for step in (steps - adapterSteps + 1)...steps { _ = try trainStep(step) }
        let final = try evaluate()

        XCTAssertGreaterThan(initial, 1.0, "an untrained network is near ln 4")
        XCTAssertLessThan(sparseOnly, 0.35, "the sparse network learned the task")
        XCTAssertLessThan(final, sparseOnly * 1.1, "adapters do not make it worse")
    }
}
