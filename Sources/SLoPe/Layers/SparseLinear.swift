/// The SLoPe linear layer: `Y = X·(W⊙Mr)ᵀ + b`, N:M sparse along the input features.
///
/// - Forward multiplies only the kept values of W (sparse kernel).
/// - Backward computes `dX` with the double-pruned transpose `(W⊙Mc)ᵀ` (also sparse) and `dW` only
///   at Mr's positions, stored compressed.
/// - A ``LowRankAdapter`` can be attached for the last steps of training and merged for inference.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = try SparseLinear(inFeatures: 512, outFeatures: 2048, backend: cpu, generator: &rng)
/// let y = try layer.forward(x)          // [T, 2048]
/// let dx = try layer.backward(dy)       // [T, 512]; layer.weight.gradient is compressed
/// ```
public final class SparseLinear: Layer {
    public let weight: SparseWeight
    public let bias: Parameter?
    public private(set) var adapter: LowRankAdapter?
    let backend: any Backend
    private var savedInput: Tensor?

    public var inFeatures: Int { weight.inFeatures }
    public var outFeatures: Int { weight.outFeatures }

    /// A randomly initialised layer (PyTorch's uniform(±1/√in)), then pruned by magnitude.
    public convenience init(
        name: String = "linear", inFeatures: Int, outFeatures: Int, bias: Bool = true,
        pattern: NMPattern = .twoFour, mode: SparseStorageMode = .compressed, dtype: DType = .float32,
        backend: any Backend, generator: inout SeededGenerator
    ) throws {
        let dense = try Linear(
            name: name, inFeatures: inFeatures, outFeatures: outFeatures, bias: bias, dtype: dtype,
            backend: backend, generator: &generator)
        try self.init(converting: dense, name: name, pattern: pattern, mode: mode)
    }

    /// Converts a dense layer: its weight is pruned N:M by magnitude (or as `selection` says), its bias kept.
    public init(
        converting linear: Linear, name: String = "linear", pattern: NMPattern = .twoFour, mode: SparseStorageMode = .compressed,
        selection: MaskSelection = .reductionDimension
    ) throws {
        backend = linear.backend
        weight = try SparseWeight(
            name: "\(name).weight", dense: linear.weight.value, pattern: pattern, mode: mode, selection: selection, backend: backend)
        bias = linear.bias.map { Parameter(name: "\(name).bias", value: $0.value) }
    }

    public var parameters: [Parameter] { (bias.map { [$0] } ?? []) + (adapter?.parameters ?? []) }
    public var sparseWeights: [SparseWeight] { [weight] }

    /// Adds a low-rank adapter of rank `rank` (L random, R zero, so the output is unchanged at first).
    @discardableResult
    public func attachAdapter(rank: Int, generator: inout SeededGenerator) throws -> LowRankAdapter {
        let created = try LowRankAdapter(
            name: weight.name.replacingSuffix(".weight", with: ".adapter"), inFeatures: inFeatures,
            outFeatures: outFeatures, rank: rank, dtype: weight.dtype, backend: backend, generator: &generator)
        adapter = created
        return created
    }

    // x [..., in] → y [..., out]
    public func forward(_ x: Tensor) throws -> Tensor {
        savedInput = x
        let y = try weight.forward(x, bias: bias?.value)
        if let adapter { try backend.accumulate(adapter.forward(x), into: y, alpha: 1) }
        return y
    }

    /// `act(forward(x))` in one call: without an adapter (whose output is added before the activation), the
    /// activation can run in the sparse GEMM's epilogue. Backward is still that of the layer alone.
    public func forward(_ x: Tensor, then activation: Activation) throws -> Tensor {
        guard adapter == nil else { return try backend.activation(forward(x), activation) }
        savedInput = x
        return try weight.forward(x, bias: bias?.value, then: activation)
    }

    public func releaseActivations() {
        savedInput = nil
        adapter?.releaseActivations()
    }

    public func forgetInput() { savedInput = nil }

    // dy [..., out] → dx [..., in]
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = savedInput else {
            throw TensorError.invalidArgument(operation: "SparseLinear.backward", reason: "call forward first")
        }
        return try backward(dy, input: x)
    }

    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        try accumulateWeightGradients(outputGradient: dy, input: x)
        let dx = try weight.inputGradient(dy)
        if let adapter { try backend.accumulate(adapter.backward(dy), into: dx, alpha: 1) }
        return dx
    }

    /// Backward with the input gradient added into `dx` by the sparse GEMM (beta = 1).
    public func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor) throws {
        guard let x = savedInput else {
            throw TensorError.invalidArgument(operation: "SparseLinear.backward", reason: "call forward first")
        }
        try accumulateWeightGradients(outputGradient: dy, input: x)
        try weight.addInputGradient(dy, into: dx)
        if let adapter { try backend.accumulate(adapter.backward(dy), into: dx, alpha: 1) }
    }

    /// The sparse weight's and bias's half of backward: dW += (dyᵀ·x) at Mr, db += Σ dy (the adapter's
    /// gradients come with ``backward(_:)``). The input half is `weight.inputGradient(dy)`, dy·(W⊙Mc).
    public func accumulateWeightGradients(outputGradient dy: Tensor, input x: Tensor) throws {
        try weight.accumulateGradient(outputGradient: dy, input: x, biasGradient: bias?.gradientBuffer(backend))
    }

    /// The inference form: W⊙Mr and the adapter's N:M-pruned Lᵀ stacked into one sparse matrix.
    /// Outputs equal ``forward(_:)``'s when L is already N:M along din (see ``LowRankAdapter/pruneDown()``).
    public func merged() throws -> MergedSparseLinear {
        try MergedSparseLinear(weight: weight.compressedWeight(), adapter: adapter, bias: bias?.value, backend: backend)
    }

    /// Parameter and gradient memory of this layer, adapter included.
    public var memory: LayerMemory {
        let dense = parameters.map(\.value.byteCount).reduce(0, +)
        return LayerMemory(parameterBytes: weight.parameterBytes + dense, gradientBytes: weight.gradientBytes + dense)
    }
}

/// Bytes a layer holds for its parameters and their gradients.
public struct LayerMemory: Sendable, Equatable {
    public var parameterBytes: Int
    public var gradientBytes: Int
}

extension String {
    func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self + replacement
    }
}
