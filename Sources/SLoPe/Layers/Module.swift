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

extension Linear: Module {}
extension SparseLinear: Module {}
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
