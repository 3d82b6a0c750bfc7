/// What a training step does once a model's gradients are in, for decoders and encoders alike: the global gradient
/// norm (always computed, so non-finite gradients never reach the weights), clipping folded into the optimizers'
/// gradient scale, SparseAdamW for the SLoPe weights and AdamW for the rest (each with LAMB's trust ratio when the
/// options ask for it) at the schedule's learning rate, and the gradients zeroed.
final class ParameterUpdate {
    let sparseOptimizer: SparseAdamW
    let denseOptimizer: AdamW
    let schedule: LearningRateSchedule
    let clipNorm: Double
    let backend: any Backend

    init(parameters: [Parameter], sparseWeights: [SparseWeight], options: TrainingOptions, backend: any Backend) throws {
        let configuration = AdamWConfiguration(
            learningRate: options.learningRate, beta1: options.beta1, beta2: options.beta2, epsilon: options.epsilon ?? 1e-8,
            weightDecay: options.weightDecay, rule: options.optimizer ?? .adamw)
        sparseOptimizer = try SparseAdamW(
            weights: sparseWeights, configuration: configuration, maskChangeFrequency: options.maskChangeFrequency,
            momentDType: options.momentDType, roundingSeed: options.roundingSeed, backend: backend)
        denseOptimizer = AdamW(
            parameters: parameters, configuration: configuration, momentDType: options.momentDType,
            decayScope: options.weightDecayScope ?? .all, roundingSeed: options.roundingSeed, backend: backend)
        schedule = try options.schedule()
        clipNorm = options.clipNorm
        self.backend = backend
    }

    /// Updates the weights for optimizer step `number` from the gradients now held; returns the norm before clipping
    /// and the learning rate. A non-finite norm zeroes the gradients and throws, the weights untouched. `parameters`
    /// and `sparseWeights` are the model's own order, so a resumed run sums the squares in the same order.
    func apply(step number: Int, parameters: [Parameter], sparseWeights: [SparseWeight]) throws -> (norm: Double, rate: Float) {
        let norm = try gradientNorm(parameters: parameters, sparseWeights: sparseWeights, backend: backend)
        guard norm.isFinite else {
            try zeroGradients()
            throw Trainer.Failure.nonFinite(step: number, what: "gradient norm (\(norm))")
        }
        let clip = Float(clipNorm > 0 ? try clippingFactor(norm: norm, maxNorm: clipNorm) : 1)
        let rate = schedule.learningRate(atStep: number)
        try sparseOptimizer.step(learningRate: rate, gradientScale: clip)
        try denseOptimizer.step(learningRate: rate, gradientScale: clip)
        try zeroGradients()
        return (norm, rate)
    }

    func zeroGradients() throws {
        try sparseOptimizer.zeroGradients()
        try denseOptimizer.zeroGradients()
    }

    /// Bytes held by the optimizers' moments.
    var stateBytes: Int { sparseOptimizer.stateBytes + denseOptimizer.stateBytes }
}
