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

extension Linear: InputSuppliedModule {}
extension SparseLinear: InputSuppliedModule {}
extension LayerNorm: Module {}
extension ActivationLayer: Module {}

extension MergedSparseLinear: Module {
    public var parameters: [Parameter] { [] }
    public func releaseActivations() {}  // inference only: forward keeps nothing

    public func backward(_ dy: Tensor) throws -> Tensor {
        throw TensorError.invalidArgument(
            operation: "MergedSparseLinear.backward", reason: "merged layers are for inference; train the SparseLinear instead")
    }
}
