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
    /// ZeRO-1: this rank updates, and keeps the moments of, only the parameters it owns (nil: all of them).
    public private(set) var sharding: OptimizerSharding?

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
        for (index, parameter) in parameters.enumerated() where owns(index) {
            guard let gradient = parameter.gradient else { continue }
            let state = try moments[index] ?? AdamMoments(like: parameter.value, dtype: momentDType, backend: backend)
            moments[index] = state
            tensors.append(AdamWTensor(
                parameter: parameter.value, gradient: gradient, moment1: state.first, moment2: state.second,
                weightDecay: decayScope.decays(parameter.value.shape) ? hyper.weightDecay : 0,
                rounding: AdamWConfiguration.rounding(seed: roundingSeed, step: stepCount, tensor: index)))
        }
        // One call: a backend may update the many small tensors (biases, norms) in a few launches.
        switch configuration.rule {
        case .adamw: try backend.adamW(tensors, step: hyper)
        case .lamb: try backend.lamb(tensors, step: hyper)  // (each tensor with its own trust ratio)
        }
        try sharding?.distribute(parameters.enumerated().compactMap { $1.gradient == nil ? nil : ($0, $1.value) })
    }

    /// Whether this rank updates parameter `index` (always, unless sharded).
    public func owns(_ index: Int) -> Bool { sharding?.owns(index) ?? true }

    /// Shards the state (ZeRO-1): from now on this rank steps only the parameters it owns, then receives the
    /// others' new values from their owners; moments it does not own are dropped.
    public func shard(_ sharding: OptimizerSharding) {
        precondition(sharding.owners.count == parameters.count, "an owner for every parameter")
        self.sharding = sharding
        for index in moments.indices where !owns(index) { moments[index] = nil }
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
        sharding?.append(sizes: newParameters.map(\.value.count))
    }

    /// Every parameter's moments that exist so far, by name, in order (for checkpoints). Sharded, each comes from its
    /// owner to every rank, one at a time: a collective call.
    public func forEachMoment(_ body: (String, AdamMoments) throws -> Void) throws {
        try OptimizerSharding.forEachMoment(
            moments, names: parameters.map(\.name), tensors: parameters.map(\.value), dtype: momentDType, backend: backend, sharding: sharding, body)
    }

    /// Restores a checkpoint's step count and moments (parameters without saved moments start fresh; sharded, only
    /// the owned parameters' are kept).
    public func restore(stepCount: Int, moments saved: [String: AdamMoments]) {
        self.stepCount = stepCount
        moments = parameters.indices.map { owns($0) ? saved[parameters[$0].name] : nil }
    }
}
