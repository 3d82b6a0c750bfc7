/// A dense linear layer, `Y = X·Wᵀ + b` with `W [out, in]` (PyTorch's layout).
public final class Linear: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    let backend: any Backend
    private var savedInput: Tensor?

    public var inFeatures: Int { weight.value.shape[1] }
    public var outFeatures: Int { weight.value.shape[0] }

    /// PyTorch's default initialisation: uniform(±1/√in) for weight and bias.
    public init(
        name: String = "linear", inFeatures: Int, outFeatures: Int, bias: Bool = true, dtype: DType = .float32,
        backend: any Backend, generator: inout SeededGenerator
    ) throws {
        let bound = 1 / Double(inFeatures).squareRoot()
        self.backend = backend
        weight = Parameter(
            name: "\(name).weight",
            value: try backend.randomUniform([outFeatures, inFeatures], bound: bound, dtype: dtype, using: &generator))
        self.bias = bias
            ? Parameter(name: "\(name).bias", value: try backend.randomUniform([outFeatures], bound: bound, dtype: dtype, using: &generator))
            : nil
    }

    /// Wraps existing tensors (`weight [out, in]`, `bias [out]`).
    public init(name: String = "linear", weight: Tensor, bias: Tensor?, backend: any Backend) throws {
        guard weight.rank == 2, bias.map({ $0.shape == [weight.shape[0]] }) ?? true else {
            throw TensorError.shapeMismatch(
                operation: "Linear", shapes: [weight.shape, bias?.shape ?? []], reason: "weight must be [out, in] and bias [out]")
        }
        self.backend = backend
        self.weight = Parameter(name: "\(name).weight", value: weight)
        self.bias = bias.map { Parameter(name: "\(name).bias", value: $0) }
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    // x [..., in] → y [..., out]
    public func forward(_ x: Tensor) throws -> Tensor {
        savedInput = x
        return try backend.gemm(x, weight.value, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias?.value)
    }

    /// `act(forward(x))` in one call, so a backend can apply the activation in the GEMM's epilogue; backward is
    /// still that of the linear layer alone (the caller differentiates the activation).
    public func forward(_ x: Tensor, then activation: Activation) throws -> Tensor {
        savedInput = x
        return try backend.linearActivated(x, weight: weight.value, bias: bias?.value, activation)
    }

    public func releaseActivations() { savedInput = nil }

    public func forgetInput() { savedInput = nil }

    // dy [..., out] → dx [..., in]; dW += dyᵀ·x, db += Σ dy.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = savedInput else {
            throw TensorError.invalidArgument(operation: "Linear.backward", reason: "call forward first")
        }
        return try backward(dy, input: x)
    }

    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        try accumulateWeightGradients(outputGradient: dy, input: x)
        return try inputGradient(dy)
    }

    /// The weight half of backward: dW += dyᵀ·x, db += Σ dy.
    public func accumulateWeightGradients(outputGradient dy: Tensor, input x: Tensor) throws {
        _ = try backend.linearWeightGradient(
            outputGradient: dy.flattenedToMatrix("Linear.backward"), input: x.flattenedToMatrix("Linear.backward"),
            into: weight.gradientBuffer(backend), biasGradient: bias?.gradientBuffer(backend))
    }

    /// Backward with the input gradient added into `dx` by the GEMM (beta = 1).
    public func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor) throws {
        guard let x = savedInput else {
            throw TensorError.invalidArgument(operation: "Linear.backward", reason: "call forward first")
        }
        try accumulateWeightGradients(outputGradient: dy, input: x)
        _ = try backend.gemm(dy, weight.value, transposeA: false, transposeB: false, alpha: 1, beta: 1, into: dx, bias: nil)
    }

    /// The input half of backward: dx = dy·W.
    public func inputGradient(_ dy: Tensor) throws -> Tensor {
        try backend.matmul(dy, weight.value)
    }
}
