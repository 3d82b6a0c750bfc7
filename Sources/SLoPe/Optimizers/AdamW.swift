/// AdamW for dense parameters (embeddings, norms, biases, the LM head, adapters).
public final class AdamW {
    public private(set) var parameters: [Parameter]
    public var configuration: AdamWConfiguration
    public private(set) var stepCount = 0
    /// Element type of the moments (float32, or bfloat16 for half the memory).
    public let momentDType: DType
    /// Which parameters weight decay applies to.
    public let decayScope: WeightDecayScope
    /// Stochastic rounding of bfloat16 parameters from this seed (nil: round to nearest).
    public let roundingSeed: UInt64?
    let backend: any Backend
    private var moments: [AdamMoments?]

    public init(
        parameters: [Parameter], configuration: AdamWConfiguration = .init(), momentDType: DType = .float32,
        decayScope: WeightDecayScope = .all, roundingSeed: UInt64? = nil, backend: any Backend
    ) {
        self.parameters = parameters
        self.configuration = configuration
        self.momentDType = momentDType
        self.decayScope = decayScope
        self.roundingSeed = roundingSeed
        self.backend = backend
        moments = Array(repeating: nil, count: parameters.count)
    }

    /// Updates every parameter that has a gradient; `learningRate` overrides the configured one (schedules);
    /// gradients are read multiplied by `gradientScale` (gradient clipping without a pass over them).
    public func step(learningRate: Float? = nil, gradientScale: Float = 1) throws {
        stepCount += 1
        let hyper = configuration.step(stepCount, learningRate: learningRate, gradientScale: gradientScale)
        var tensors: [AdamWTensor] = []
        for (index, parameter) in parameters.enumerated() {
            guard let gradient = parameter.gradient else { continue }
            let state = try moments[index] ?? AdamMoments(like: parameter.value, dtype: momentDType, backend: backend)
            moments[index] = state
            tensors.append(AdamWTensor(
                parameter: parameter.value, gradient: gradient, moment1: state.first, moment2: state.second,
                weightDecay: decayScope.decays(parameter.value.shape) ? hyper.weightDecay : 0,
                rounding: AdamWConfiguration.rounding(seed: roundingSeed, step: stepCount, tensor: index)))
        }
        switch configuration.rule {
        case .adamw:  // one call: a backend may update the many small tensors (biases, norms) in a few launches
            try backend.adamW(tensors, step: hyper)
        case .lamb:  // each tensor has its own trust ratio
            for tensor in tensors { try configuration.update(tensor, step: hyper, backend: backend) }
        }
    }

    public func zeroGradients() throws {
        for parameter in parameters { try parameter.zeroGradient(backend) }
    }

    /// Bytes held by the moments.
    public var stateBytes: Int { moments.compactMap { $0?.byteCount }.reduce(0, +) }

    /// Adds parameters (e.g. adapters attached mid-training); existing moments are kept.
    public func append(_ newParameters: [Parameter]) {
        parameters += newParameters
        moments += Array(repeating: nil, count: newParameters.count)
    }

    /// The moments that exist so far, keyed by parameter name (for checkpoints).
    public var momentsByName: [String: AdamMoments] {
        Dictionary(uniqueKeysWithValues: zip(parameters, moments).compactMap { parameter, state in state.map { (parameter.name, $0) } })
    }

    /// Restores a checkpoint's step count and moments (parameters without saved moments start fresh).
    public func restore(stepCount: Int, moments saved: [String: AdamMoments]) {
        self.stepCount = stepCount
        moments = parameters.map { saved[$0.name] }
    }
}
