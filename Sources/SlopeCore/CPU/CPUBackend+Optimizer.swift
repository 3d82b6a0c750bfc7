extension CPUBackend {
    // param, grad: [n] of one float dtype; moment1, moment2: [n] float32 (float64 for float64 params). A bfloat16
    // parameter under stochastic rounding gets a value bf16 holds exactly, so storing it back changes nothing.
    public func adamW(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep) throws {
        try OperandChecks.adamW(parameter: parameter, gradient: gradient, moment1: moment1, moment2: moment2, step: step)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            let lr = T(step.learningRate), b1 = T(step.beta1), b2 = T(step.beta2)
            let eps = T(step.epsilon), decay = T(step.weightDecay), gscale = T(step.gradientScale)
            let correction1 = 1 - T.pow(b1, step.step)
            let correction2 = 1 - T.pow(b2, step.step)
            let stochasticSeed: UInt32? = switch step.rounding {
            case .stochastic(let seed) where parameter.dtype == .bfloat16: seed
            default: nil
            }
            try read(gradient, as: type, "adamW") { g in
                try modify(moment1, as: type, "adamW") { m in
                    try modify(moment2, as: type, "adamW") { v in
                        try modify(parameter, as: type, "adamW") { p in
                            parallelFor(parameter.count, grain: 1 << 14) { r in
                                for i in r {
                                    let gi = g[i] * gscale
                                    m[i] = b1 * m[i] + (1 - b1) * gi
                                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                                    let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                                    let updated = p[i] * (1 - lr * decay) - lr * update
                                    if let seed = stochasticSeed {
                                        p[i] = T(StochasticRounding.bfloat16(Float(updated), bits: StochasticRounding.bits(seed: seed, index: i)))
                                    } else {
                                        p[i] = updated
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        try (computeKind(for: parameter.dtype, operation: "adamW") == .double ? run(Double.self) : run(Float.self))
    }
}
