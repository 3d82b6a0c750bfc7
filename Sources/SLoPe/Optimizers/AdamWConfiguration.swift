/// Which tensors weight decay applies to.
public enum WeightDecayScope: String, Codable, Sendable, CaseIterable {
    /// Every trained tensor (slope's behaviour before the option existed).
    case all
    /// Matrices and embeddings only — tensors of two or more dimensions — not biases or norm gains: GPT-2's and
    /// nanoGPT's recipe. SLoPe's sparse weights and the adapters' factors are matrices, so they are decayed.
    case matrices

    /// Whether a tensor of `shape` is decayed.
    public func decays(_ shape: [Int]) -> Bool { self == .all || shape.count >= 2 }
}

/// How bfloat16 weights store their updates (``ParameterRounding``): `stochastic` keeps updates smaller than
/// bf16's resolution from vanishing late in a schedule; float32 and float16 weights always round to nearest.
public enum WeightRounding: String, Codable, Sendable, CaseIterable {
    case nearest
    case stochastic
}

/// AdamW hyper-parameters with PyTorch's defaults (bias correction on, decoupled weight decay), and whether the
/// update is AdamW's or LAMB's (which takes the same hyper-parameters).
public struct AdamWConfiguration: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public var rule: UpdateRule

    public init(
        learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01,
        rule: UpdateRule = .adamw
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.rule = rule
    }

    private enum CodingKeys: String, CodingKey { case learningRate, beta1, beta2, epsilon, weightDecay, rule }

    /// Checkpoints written before LAMB existed have no `rule`: they trained with AdamW.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        learningRate = try container.decode(Float.self, forKey: .learningRate)
        beta1 = try container.decode(Float.self, forKey: .beta1)
        beta2 = try container.decode(Float.self, forKey: .beta2)
        epsilon = try container.decode(Float.self, forKey: .epsilon)
        weightDecay = try container.decode(Float.self, forKey: .weightDecay)
        rule = try container.decodeIfPresent(UpdateRule.self, forKey: .rule) ?? .adamw
    }

    /// Updates one tensor in place by ``rule``.
    func update(_ tensor: AdamWTensor, step: AdamWStep, backend: any Backend) throws {
        switch rule {
        case .adamw:
            try backend.adamW(
                parameter: tensor.parameter, gradient: tensor.gradient, moment1: tensor.moment1, moment2: tensor.moment2,
                step: tensor.step(step))
        case .lamb:
            try backend.lamb([tensor], step: step)
        }
    }

    func step(_ number: Int, learningRate: Float?, gradientScale: Float) -> AdamWStep {
        AdamWStep(
            learningRate: learningRate ?? self.learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
            weightDecay: weightDecay, step: number, gradientScale: gradientScale)
    }

    /// The rounding of tensor number `tensor` at step `number`: fresh random bits for every step and tensor,
    /// derived from `seed` alone so a resumed run rounds as the uninterrupted one would.
    static func rounding(seed: UInt64?, step number: Int, tensor: Int) -> ParameterRounding {
        seed.map { .stochastic(seed: StochasticRounding.seed(run: $0, step: number, tensor: tensor)) } ?? .nearest
    }
}

/// First and second moments of one tensor: float32 by default (bfloat16 when asked, to halve the optimizer's
/// memory), and float64 for float64 parameters (the CPU's reference precision).
public struct AdamMoments {
    public let first: Tensor
    public let second: Tensor

    public init(first: Tensor, second: Tensor) {
        self.first = first
        self.second = second
    }

    init(like tensor: Tensor, dtype: DType = .float32, backend: any Backend) throws {
        let dtype: DType = tensor.dtype == .float64 ? .float64 : dtype
        first = try backend.zeros(tensor.shape, dtype: dtype)
        second = try backend.zeros(tensor.shape, dtype: dtype)
    }

    var byteCount: Int { first.byteCount + second.byteCount }
}
