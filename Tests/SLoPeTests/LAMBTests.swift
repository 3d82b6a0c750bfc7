import FoundationEssentials
import SLoPe
import SlopeTestSupport
import XCTest

/// LAMB against its formulas written out step by step (You et al. 2019, as apex's FusedLAMB applies them).
final class LAMBTests: XCTestCase {
    let cpu = CPUBackend()

    /// One tensor's LAMB state, advanced by hand in Double (hyper-parameters as the Float the optimizer holds).
    struct Reference {
        var w: [Double], m: [Double], v: [Double]
        let lr: Double, beta1: Double, beta2: Double, epsilon: Double, decay: Double

        init(w: [Double], lr: Float, beta1: Float, beta2: Float, epsilon: Float, decay: Float) {
            self.w = w
            (m, v) = ([Double](repeating: 0, count: w.count), [Double](repeating: 0, count: w.count))
            (self.lr, self.beta1, self.beta2, self.epsilon, self.decay) = (Double(lr), Double(beta1), Double(beta2), Double(epsilon), Double(decay))
        }

        mutating func step(_ g: [Double], number t: Int) {
            var u = [Double](repeating: 0, count: w.count)
            for i in w.indices {
                m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
                let mHat = m[i] / (1 - pow(beta1, Double(t))), vHat = v[i] / (1 - pow(beta2, Double(t)))
                u[i] = mHat / (vHat.squareRoot() + epsilon) + decay * w[i]
            }
            let wNorm = w.map { $0 * $0 }.reduce(0, +).squareRoot(), uNorm = u.map { $0 * $0 }.reduce(0, +).squareRoot()
            let ratio = decay == 0 || wNorm == 0 || uNorm == 0 ? 1 : wNorm / uNorm
            for i in w.indices { w[i] -= lr * ratio * u[i] }
        }
    }

    func testDenseStepsMatchTheFormulas() throws {
        let start: [Double] = [0.5, -1.5, 2.0, 0.25, -0.75, 1.0]
        let configuration = AdamWConfiguration(learningRate: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.05, rule: .lamb)
        let parameter = Parameter(name: "w", value: try cpu.tensor(start, shape: [2, 3], dtype: .float64))
        let optimizer = AdamW(parameters: [parameter], configuration: configuration, backend: cpu)
        var reference = Reference(w: start, lr: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-6, decay: 0.05)
        let gradients: [[Double]] = [[0.1, -0.2, 0.3, 0.0, 0.5, -0.4], [-0.3, 0.1, 0.2, 0.6, -0.1, 0.05], [0.2, 0.2, -0.5, 0.1, 0.3, 0.0]]
        for (index, g) in gradients.enumerated() {
            try parameter.accumulateGradient(cpu.tensor(g, shape: [2, 3], dtype: .float64), cpu)
            try optimizer.step()
            try optimizer.zeroGradients()
            reference.step(g, number: index + 1)
            let got = try cpu.doubles(parameter.value)
            for (a, b) in zip(got, reference.w) { XCTAssertEqual(a, b, accuracy: 1e-12, "step \(index + 1)") }
        }
        // The trust ratio mattered: plain AdamW moves the weights differently.
        let adam = Parameter(name: "w", value: try cpu.tensor(start, shape: [2, 3], dtype: .float64))
        var adamConfiguration = configuration
        adamConfiguration.rule = .adamw
        let plain = AdamW(parameters: [adam], configuration: adamConfiguration, backend: cpu)
        try adam.accumulateGradient(cpu.tensor(gradients[0], shape: [2, 3], dtype: .float64), cpu)
        try plain.step()
        var first = Reference(w: start, lr: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-6, decay: 0.05)
        first.step(gradients[0], number: 1)
        XCTAssertGreaterThan(zip(try cpu.doubles(adam.value), first.w).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testTensorsWithoutWeightDecayTakeAdamWsStep() throws {
        // NVIDIA's recipe decays matrices only; biases and norm gains then get no trust ratio.
        let start: [Double] = [0.3, -0.6, 0.9]
        let g: [Double] = [0.2, 0.1, -0.3]
        var results: [[Double]] = []
        for rule in UpdateRule.allCases {
            let bias = Parameter(name: "b", value: try cpu.tensor(start, shape: [3], dtype: .float64))
            let optimizer = AdamW(
                parameters: [bias], configuration: AdamWConfiguration(learningRate: 0.1, weightDecay: 0.1, rule: rule),
                decayScope: .matrices, backend: cpu)
            try bias.accumulateGradient(cpu.tensor(g, shape: [3], dtype: .float64), cpu)
            try optimizer.step()
            results.append(try cpu.doubles(bias.value))
        }
        for (a, b) in zip(results[0], results[1]) { XCTAssertEqual(a, b, accuracy: 1e-14) }
        XCTAssertNotEqual(results[0], start)
    }

    func testSparseLAMBTakesTheRatioOverKeptValues() throws {
        var generator = SeededGenerator(seed: 7)
        let layer = try SparseLinear(inFeatures: 16, outFeatures: 8, bias: false, dtype: .float64, backend: cpu, generator: &generator)
        let configuration = AdamWConfiguration(learningRate: 0.02, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1, rule: .lamb)
        let optimizer = try SparseAdamW(weights: [layer.weight], configuration: configuration, maskChangeFrequency: 0, backend: cpu)
        let rowMask = try cpu.uint8s(layer.weight.rowMask())
        var reference = Reference(w: try cpu.doubles(layer.weight.values), lr: 0.02, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, decay: 0.1)
        for step in 1...2 {
            _ = try layer.forward(randomTensor(cpu, [4, 16], dtype: .float64, seed: UInt64(step)))
            _ = try layer.backward(randomTensor(cpu, [4, 8], dtype: .float64, seed: UInt64(step + 10)))
            reference.step(try cpu.doubles(layer.weight.gradient!), number: step)
            try optimizer.step()
            try optimizer.zeroGradients()
            let got = try cpu.doubles(layer.weight.values)
            for (a, b) in zip(got, reference.w) { XCTAssertEqual(a, b, accuracy: 1e-12, "step \(step)") }
            XCTAssertEqual(try cpu.uint8s(layer.weight.rowMask()), rowMask, "pruned positions stay pruned")
        }
    }

    func testTrustRatioEdgeCasesAndOldCheckpoints() throws {
        // A zero tensor (fresh biases) or a zero update keeps AdamW's step size.
        let zero = Parameter(name: "z", value: try cpu.zeros([4, 4], dtype: .float64))
        let optimizer = AdamW(parameters: [zero], configuration: AdamWConfiguration(learningRate: 0.1, rule: .lamb), backend: cpu)
        try zero.accumulateGradient(cpu.tensor([Double](repeating: 1, count: 16), shape: [4, 4], dtype: .float64), cpu)
        try optimizer.step()
        for value in try cpu.doubles(zero.value) { XCTAssertEqual(value, -0.1, accuracy: 1e-6) }
        // Configurations saved before LAMB existed decode as AdamW.
        let old = #"{"learningRate":0.001,"beta1":0.9,"beta2":0.95,"epsilon":1e-08,"weightDecay":0.1}"#
        let decoded = try JSONDecoder().decode(AdamWConfiguration.self, from: Data(old.utf8))
        XCTAssertEqual(decoded.rule, .adamw)
        let options = try JSONDecoder().decode(TrainingOptions.self, from: JSONEncoder().encode(TrainingOptions(steps: 3, optimizer: .lamb)))
        XCTAssertEqual(options.optimizer, .lamb)
    }
}
