import SlopeCore
import SlopeTestSupport
import XCTest

final class AdamWTests: XCTestCase {
    let cpu = CPUBackend()

    func testMatchesPyTorchFormulaOverSeveralSteps() throws {
        let count = 37
        var p = randomValues(count, seed: 1)
        var m = [Double](repeating: 0, count: count), v = m
        let param = try cpu.tensor(p, shape: [count], dtype: .float64)
        let m1 = try cpu.zeros([count], dtype: .float64), m2 = try cpu.zeros([count], dtype: .float64)
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.95, 1e-8, 0.1)
        for step in 1...5 {
            let g = randomValues(count, seed: UInt64(10 + step))
            try cpu.adamW(parameter: param, gradient: cpu.tensor(g, shape: [count], dtype: .float64), moment1: m1, moment2: m2,
                          step: AdamWStep(learningRate: Float(lr), beta1: Float(b1), beta2: Float(b2), epsilon: Float(eps), weightDecay: Float(wd), step: step))
            // torch.optim.AdamW: decay first, then the bias-corrected Adam update (hyper-parameters rounded to Float as passed).
            let (lrF, b1F, b2F, epsF, wdF) = (Double(Float(lr)), Double(Float(b1)), Double(Float(b2)), Double(Float(eps)), Double(Float(wd)))
            for i in 0..<count {
                m[i] = b1F * m[i] + (1 - b1F) * g[i]
                v[i] = b2F * v[i] + (1 - b2F) * g[i] * g[i]
                let mHat = m[i] / (1 - Double.pow(b1F, Double(step)))
                let vHat = v[i] / (1 - Double.pow(b2F, Double(step)))
                p[i] = p[i] * (1 - lrF * wdF) - lrF * mHat / (vHat.squareRoot() + epsF)
            }
        }
        assertClose(try cpu.doubles(param), p, rtol: 1e-12, atol: 1e-14)
    }

    func testRejectsStepZeroAndMismatchedMoments() throws {
        let p = try cpu.zeros([4], dtype: .float32)
        assertThrowsTensorError(try cpu.adamW(parameter: p, gradient: p, moment1: p, moment2: p, step: AdamWStep(learningRate: 1, step: 0))) { error in
            error.description.contains("step")
        }
        assertThrowsTensorError(try cpu.adamW(parameter: p, gradient: p, moment1: cpu.zeros([3], dtype: .float32), moment2: p, step: AdamWStep(learningRate: 1, step: 1))) { error in
            if case .shapeMismatch = error { return true }
            return false
        }
    }
}
