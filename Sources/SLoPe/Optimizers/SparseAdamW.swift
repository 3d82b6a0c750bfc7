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
    let backend: any Backend
    private var moments: [AdamMoments]

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
        self.backend = backend
        moments = try weights.map { try AdamMoments(like: $0.values, dtype: momentDType, backend: backend) }
    }

    /// Whether step `number` (1-based) re-selects the column mask.
    public func changesMask(atStep number: Int) -> Bool {
        maskChangeFrequency > 0 && number % maskChangeFrequency == 0
    }

    /// One step; `learningRate` and `gradientScale` as in ``AdamW/step(learningRate:gradientScale:)``.
    public func step(learningRate: Float? = nil, gradientScale: Float = 1) throws {
        stepCount += 1
        let hyper = configuration.step(stepCount, learningRate: learningRate, gradientScale: gradientScale)
        let reselect = changesMask(atStep: stepCount)
        for (index, (weight, state)) in zip(weights, moments).enumerated() {
            if let gradient = weight.gradient {
                // Negative tensor numbers: the dense optimizer's parameters draw other bits.
                let tensor = AdamWTensor(
                    parameter: weight.values, gradient: gradient, moment1: state.first, moment2: state.second,
                    weightDecay: hyper.weightDecay,
                    rounding: AdamWConfiguration.rounding(seed: roundingSeed, step: stepCount, tensor: -1 - index))
                try configuration.update(tensor, step: hyper, backend: backend)
            }
            try weight.refreshTranspose(reselectMask: reselect)
        }
    }

    public func zeroGradients() throws {
        for weight in weights { try weight.zeroGradient() }
    }

    /// Bytes held by the moments.
    public var stateBytes: Int { moments.map(\.byteCount).reduce(0, +) }

    /// Moments keyed by weight name (for checkpoints).
    public var momentsByName: [String: AdamMoments] {
        Dictionary(uniqueKeysWithValues: zip(weights, moments).map { ($0.name, $1) })
    }

    /// Restores a checkpoint's step count and moments; every weight must have saved moments.
    public func restore(stepCount: Int, moments saved: [String: AdamMoments]) throws {
        moments = try weights.map { weight in
            guard let state = saved[weight.name], state.first.count == weight.values.count else {
                throw TensorError.invalidArgument(operation: "SparseAdamW.restore", reason: "no moments of the right size for \(weight.name)")
            }
            return state
        }
        self.stepCount = stepCount
    }
}
