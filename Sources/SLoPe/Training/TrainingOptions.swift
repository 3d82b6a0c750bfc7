import SlopeData

/// Everything that decides a training run's numbers; saved in checkpoints so a resumed run is identical.
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var steps: Int
    public var batchSize: Int
    public var sequenceLength: Int
    /// Micro-batches per optimizer step (their gradients are averaged).
    public var gradientAccumulation: Int
    public var learningRate: Float
    public var minimumLearningRate: Float
    public var warmupSteps: Int
    public var decay: LearningRateSchedule.Decay
    public var weightDecay: Float
    public var beta1: Float
    public var beta2: Float
    /// Global gradient-norm clip; 0 turns clipping off.
    public var clipNorm: Double
    /// `nil` trains the dense model; otherwise its linears become SLoPe layers as the plan says.
    public var sparsity: SparsityPlan?
    /// Fraction of the steps, at the end, trained with lazy low-rank adapters (0 turns them off).
    public var adapterFraction: Double
    public var adapterRank: Int
    /// Steps between re-selections of the double-pruned transpose's mask (0: never).
    public var maskChangeFrequency: Int
    /// Steps between validation passes (0: only at the end) and batches per pass.
    public var evaluationInterval: Int
    public var evaluationBatches: Int
    public var seed: UInt64
    /// Element type of both optimizers' moments: nil (float32, the default) or bfloat16 (half the optimizer's
    /// memory, as PyTorch keeps them for a bf16 model). Optional so that checkpoints from before it decode.
    public var optimizerState: DType?
    /// How training sequences are cut from the data (nil: fixed windows). Optional, as the ones below, so that
    /// checkpoints from before these options decode with the behaviour they were trained with.
    public var sampling: TokenLoader.Sampling?
    /// AdamW's ε (nil: 1e-8, PyTorch's default).
    public var epsilon: Float?
    /// Which tensors weight decay applies to (nil: all).
    public var weightDecayScope: WeightDecayScope?
    /// How bfloat16 weights store their updates (nil: to nearest, as checkpoints from before the option trained).
    public var weightRounding: WeightRounding?
    /// AdamW or LAMB (nil: AdamW).
    public var optimizer: UpdateRule?

    /// The moments' element type this run uses.
    public var momentDType: DType { optimizerState ?? .float32 }

    public init(
        steps: Int, batchSize: Int = 16, sequenceLength: Int = 128, gradientAccumulation: Int = 1,
        learningRate: Float = 1e-3, minimumLearningRate: Float? = nil, warmupSteps: Int? = nil,
        decay: LearningRateSchedule.Decay = .cosine, weightDecay: Float = 0.1, beta1: Float = 0.9, beta2: Float = 0.95,
        clipNorm: Double = 1, sparsity: SparsityPlan? = SparsityPlan(), adapterFraction: Double = 0.01, adapterRank: Int = 16,
        maskChangeFrequency: Int = 100, evaluationInterval: Int = 0, evaluationBatches: Int = 8, seed: UInt64 = 0,
        optimizerState: DType? = nil, sampling: TokenLoader.Sampling = .random, epsilon: Float? = nil,
        weightDecayScope: WeightDecayScope? = nil, weightRounding: WeightRounding = .stochastic, optimizer: UpdateRule = .adamw
    ) {
        self.steps = steps
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.gradientAccumulation = gradientAccumulation
        self.learningRate = learningRate
        self.minimumLearningRate = minimumLearningRate ?? learningRate / 10
        self.warmupSteps = warmupSteps ?? min(steps / 10, 2000)
        self.decay = decay
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.clipNorm = clipNorm
        self.sparsity = sparsity
        self.adapterFraction = adapterFraction
        self.adapterRank = adapterRank
        self.maskChangeFrequency = maskChangeFrequency
        self.evaluationInterval = evaluationInterval
        self.evaluationBatches = evaluationBatches
        self.seed = seed
        self.optimizerState = optimizerState == .float32 ? nil : optimizerState
        self.sampling = sampling == .windows ? nil : sampling
        self.epsilon = epsilon
        self.weightDecayScope = weightDecayScope == .all ? nil : weightDecayScope
        self.weightRounding = weightRounding == .nearest ? nil : weightRounding
        self.optimizer = optimizer == .adamw ? nil : optimizer
    }

    /// The seed of the optimizers' stochastic rounding (nil: round to nearest).
    public var roundingSeed: UInt64? { weightRounding == .stochastic ? seed &+ 0x5EED_0F_B16 : nil }

    public func validate() throws {
        func fail(_ reason: String) -> TensorError { .invalidArgument(operation: "training options", reason: reason) }
        guard steps >= 1 else { throw fail("steps must be ≥ 1") }
        guard batchSize >= 1, sequenceLength >= 1, gradientAccumulation >= 1 else {
            throw fail("batch size, sequence length and gradient accumulation must be ≥ 1")
        }
        guard learningRate > 0, minimumLearningRate >= 0, minimumLearningRate <= learningRate else {
            throw fail("need 0 ≤ minimum learning rate ≤ learning rate and learning rate > 0")
        }
        guard (0...1).contains(adapterFraction), adapterRank >= 1 else { throw fail("adapter fraction must be in 0...1 and rank ≥ 1") }
        guard clipNorm >= 0, evaluationBatches >= 1, evaluationInterval >= 0, maskChangeFrequency >= 0 else {
            throw fail("clip, evaluation interval and mask-change frequency must be ≥ 0 and evaluation batches ≥ 1")
        }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2), (epsilon ?? 1e-8) > 0, (epsilon ?? 1e-8).isFinite,
              weightDecay >= 0, weightDecay.isFinite else {
            throw fail("need 0 ≤ β1, β2 < 1, a finite ε > 0 and a finite weight decay ≥ 0 (got β1 \(beta1), β2 \(beta2), "
                + "ε \(epsilon ?? 1e-8), weight decay \(weightDecay))")
        }
        guard [.float32, .bfloat16].contains(momentDType) else {
            throw fail("optimizer state must be float32 or bfloat16, not \(momentDType)")
        }
    }

    /// Steps trained with adapters, at the end (at least one when the fraction is positive and the model is sparse).
    public var adapterSteps: Int {
        guard sparsity != nil, adapterFraction > 0 else { return 0 }
        return min(steps, max(1, Int((Double(steps) * adapterFraction).rounded(.up))))
    }

    /// Seed of the adapters' initialisation: derived, so a resumed run re-creates the same adapters.
    public var adapterSeed: UInt64 { seed &+ 0xADA9 }

    /// Tokens per optimizer step.
    public var tokensPerStep: Int { batchSize * sequenceLength * gradientAccumulation }

    public func schedule() throws -> LearningRateSchedule {
        try LearningRateSchedule(
            peak: learningRate, minimum: minimumLearningRate, warmupSteps: min(warmupSteps, steps), totalSteps: steps, decay: decay)
    }
}
