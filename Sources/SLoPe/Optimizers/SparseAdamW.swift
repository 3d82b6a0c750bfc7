/// AdamW (or LAMB, by the configuration's rule) over SLoPe weights' compressed values.
///
/// Moments have the compressed size; weight decay applies to kept values only. After each step the
/// double-pruned transpose is refreshed from the new W, and every `maskChangeFrequency` steps the
/// column mask Mc is selected anew by magnitude and kept from then on.
public final class SparseAdamW {
    public let weights: [SparseWeight]
    public var configuration: AdamWConfiguration
    /// Steps between re-selections of Mc; 0 keeps the initial Mc for good.
    public let maskChangeFrequency: Int
    public private(set) var stepCount = 0
    /// Stochastic rounding of bfloat16 values from this seed (nil: round to nearest).
    public let roundingSeed: UInt64?
    /// Element type of the moments.
    public let momentDType: DType
    let backend: any Backend
    /// Made at a weight's first step, so a sharded run never allocates the moments of weights other ranks own.
    private var moments: [AdamMoments?]
    /// ZeRO-1: this rank updates, and keeps the moments of, only the weights it owns (nil: all of them).
    public private(set) var sharding: OptimizerSharding?

    public init(
        weights: [SparseWeight], configuration: AdamWConfiguration = .init(), maskChangeFrequency: Int = 100,
        momentDType: DType = .float32, roundingSeed: UInt64? = nil, backend: any Backend
    ) throws {
        guard maskChangeFrequency >= 0 else {
            throw TensorError.invalidArgument(operation: "SparseAdamW", reason: "maskChangeFrequency must be ≥ 0")
        }
        self.weights = weights
        self.configuration = configuration
        self.maskChangeFrequency = maskChangeFrequency
        self.roundingSeed = roundingSeed
        self.momentDType = momentDType
        self.backend = backend
        moments = Array(repeating: nil, count: weights.count)
    }

    /// Whether step `number` (1-based) re-selects the column mask.
    public func changesMask(atStep number: Int) -> Bool {
        maskChangeFrequency > 0 && number % maskChangeFrequency == 0
    }

    /// One step; `learningRate` and `gradientScale` as in ``AdamW/step(learningRate:gradientScale:)``.
    public func step(learningRate: Float? = nil, gradientScale: Float = 1) throws {
        stepCount += 1
        let hyper = configuration.step(stepCount, learningRate: learningRate, gradientScale: gradientScale)
        for (index, weight) in weights.enumerated() where owns(index) {
            guard let gradient = weight.gradient else { continue }
            let state = try moments[index] ?? AdamMoments(like: weight.values, dtype: momentDType, backend: backend)
            moments[index] = state
            // Negative tensor numbers: the dense optimizer's parameters draw other bits.
            let tensor = AdamWTensor(
                parameter: weight.values, gradient: gradient, moment1: state.first, moment2: state.second,
                weightDecay: hyper.weightDecay,
                rounding: AdamWConfiguration.rounding(seed: roundingSeed, step: stepCount, tensor: -1 - index))
            try configuration.update(tensor, step: hyper, backend: backend)
        }
        try sharding?.distribute(weights.enumerated().compactMap { $1.gradient == nil ? nil : ($0, $1.values) })
        // Every rank refreshes every transpose from the same values, so masks are re-selected alike everywhere.
        let reselect = changesMask(atStep: stepCount)
        for weight in weights { try weight.refreshTranspose(reselectMask: reselect) }
    }

    /// Whether this rank updates weight `index` (always, unless sharded).
    public func owns(_ index: Int) -> Bool { sharding?.owns(index) ?? true }

    /// Shards the state (ZeRO-1), as ``AdamW/shard(_:)`` does.
    public func shard(_ sharding: OptimizerSharding) {
        precondition(sharding.owners.count == weights.count, "an owner for every weight")
        self.sharding = sharding
        for index in moments.indices where !owns(index) { moments[index] = nil }
    }

    public func zeroGradients() throws {
        for weight in weights { try weight.zeroGradient() }
    }

    /// Bytes held by the moments.
    public var stateBytes: Int { moments.compactMap { $0?.byteCount }.reduce(0, +) }

    /// Every weight's moments that exist so far, by name, in order (for checkpoints); collective when sharded, as
    /// ``AdamW/forEachMoment(_:)``.
    public func forEachMoment(_ body: (String, AdamMoments) throws -> Void) throws {
        try OptimizerSharding.forEachMoment(
            moments, names: weights.map(\.name), tensors: weights.map(\.values), dtype: momentDType, backend: backend, sharding: sharding, body)
    }

    /// Restores a checkpoint's step count and moments; every weight this rank owns must have saved moments once a
    /// step has been taken.
    public func restore(stepCount: Int, moments saved: [String: AdamMoments]) throws {
        moments = try weights.enumerated().map { index, weight in
            guard owns(index), stepCount > 0 || saved[weight.name] != nil else { return nil }
            guard let state = saved[weight.name], state.first.count == weight.values.count else {
                throw TensorError.invalidArgument(operation: "SparseAdamW.restore", reason: "no moments of the right size for \(weight.name)")
            }
            return state
        }
        self.stepCount = stepCount
    }
}
