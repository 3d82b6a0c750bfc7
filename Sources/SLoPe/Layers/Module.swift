/// A layer with one input and one output: what transformer blocks are assembled from.
///
/// `forward` remembers what `backward` needs; `backward` takes `dL/dy`, accumulates parameter gradients
/// and returns `dL/dx`. Linear, SparseLinear, LayerNorm, RMSNorm and ActivationLayer are modules.
public protocol Module: Layer {
    func forward(_ x: Tensor) throws -> Tensor
    func backward(_ dy: Tensor) throws -> Tensor
    /// Forgets what the last `forward` kept for `backward` (activation recomputation frees it between the passes).
    func releaseActivations()
}

/// A module that can leave its forward input to the caller: after ``forgetInput()`` the caller hands the same
/// input to ``backward(_:input:)`` (recomputed, when that is cheaper than keeping it).
public protocol InputSuppliedModule: Module {
    /// Drops the forward input kept for backward (state of attached adapters stays).
    func forgetInput()
    /// `backward(dy)` with the forward input `x` supplied.
    func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor
}

/// A normalisation that takes a pre-norm block's residual stream into its own passes: the add `h = x + r` before
/// it, and in backward the gradient that reaches `h` around it — one pass over `[tokens, features]` each
/// instead of two.
public protocol ResidualNorm: Module {
    /// `h = x + residual` and `norm(h)`; backward then treats `h` as the input.
    func forward(_ x: Tensor, adding residual: Tensor) throws -> (sum: Tensor, output: Tensor)
    /// `backward(dy) + residualGradient`.
    func backward(_ dy: Tensor, addingGradient residualGradient: Tensor) throws -> Tensor
}

extension ResidualNorm {
    /// ``forward(_:adding:)`` where there is a residual, else `x` itself and `norm(x)`.
    func forward(_ x: Tensor, addingIfAny residual: Tensor?) throws -> (sum: Tensor, output: Tensor) {
        try residual.map { try forward(x, adding: $0) } ?? (x, forward(x))
    }
}

extension LayerNorm: ResidualNorm {}
extension RMSNorm: ResidualNorm {}

extension Optional where Wrapped == Tensor {
    /// The residual sum a backend returns when given a residual.
    func orThrow(missingSumIn operation: String) throws -> Tensor {
        guard let self else { throw TensorError.invalidArgument(operation: operation, reason: "the backend returned no residual sum") }
        return self
    }
}

/// A module that can add its input gradient into an existing tensor (a linear layer: its GEMM with beta = 1)
/// instead of returning a new one for the caller to add: where several projections read the same input (q, k, v;
/// SwiGLU's gate and up), one pass over `[tokens, features]` less per extra projection.
public protocol InputGradientAccumulating: Module {
    func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor) throws
}

extension Module {
    /// `dx += backward(dy)`: in the module's own GEMM where it can, else by an add.
    func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor, _ backend: any Backend) throws {
        if let module = self as? InputGradientAccumulating {
            try module.backward(dy, addingInputGradientTo: dx)
        } else {
            try backend.accumulate(backward(dy), into: dx, alpha: 1)
        }
    }

    /// The input gradient added into `target` (and `target` returned), or a new tensor where there is none.
    func backward(_ dy: Tensor, addingInputGradientTo target: Tensor?, _ backend: any Backend) throws -> Tensor {
        guard let target else { return try backward(dy) }
        try backward(dy, addingInputGradientTo: target, backend)
        return target
    }
}

/// A projection that can apply the activation after it in the same call (a backend may put it in the GEMM's
/// epilogue); its backward is the projection's alone, the caller differentiating the activation.
public protocol ActivatedModule: Module {
    func forward(_ x: Tensor, then activation: Activation) throws -> Tensor
}

extension Linear: ActivatedModule {}
extension SparseLinear: ActivatedModule {}
extension Linear: InputGradientAccumulating {}
extension SparseLinear: InputGradientAccumulating {}
extension Linear: InputSuppliedModule {}
extension SparseLinear: InputSuppliedModule {}
extension ActivationLayer: Module {}

extension MergedSparseLinear: InferenceOnlyModule {
    public var parameters: [Parameter] { [] }
    public func releaseActivations() {}  // inference only: forward keeps nothing

    public func backward(_ dy: Tensor) throws -> Tensor {
        throw TensorError.invalidArgument(
            operation: "MergedSparseLinear.backward", reason: "merged layers are for inference; train the SparseLinear instead")
    }
}
