/// One pre-norm decoder block: `h = x + attention(norm₁(x))`, `y = h + mlp(norm₂(h))`.
public final class TransformerBlock: Layer {
    public let attentionNorm: any ResidualNorm
    public let attention: SelfAttention
    public let mlpNorm: any ResidualNorm
    public let mlp: FeedForward
    let backend: any Backend

    init(attentionNorm: any ResidualNorm, attention: SelfAttention, mlpNorm: any ResidualNorm, mlp: FeedForward, backend: any Backend) {
        self.attentionNorm = attentionNorm
        self.attention = attention
        self.mlpNorm = mlpNorm
        self.mlp = mlp
        self.backend = backend
    }

    public var parameters: [Parameter] {
        attentionNorm.parameters + attention.parameters + mlpNorm.parameters + mlp.parameters
    }
    public var sparseWeights: [SparseWeight] { attention.sparseWeights + mlp.sparseWeights }

    /// Keep only the block's input between the passes and recompute the rest before `backward` (activation
    /// checkpointing): the block's activations are held for one block at a time instead of all of them, for
    /// one more forward pass of compute. The gradients are the same.
    public var recomputesActivations = false
    private var recomputeInput: (x: Tensor, batch: Int, sequence: Int)?

    public func forward(_ x: Tensor, batch: Int, sequence: Int) throws -> Tensor {
        let y = try run(x) { try attention.forward($0, batch: batch, sequence: sequence) }
        if recomputesActivations {
            recomputeInput = (x, batch, sequence)
            releaseActivations()
        }
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        if let saved = recomputeInput {
            recomputeInput = nil
            _ = try run(saved.x) { try attention.forward($0, batch: saved.batch, sequence: saved.sequence) }
        }
        // Each residual connection's gradient is added inside the norm's backward pass.
        let dh = try mlpNorm.backward(mlp.backward(dy), addingGradient: dy)
        let dx = try attentionNorm.backward(attention.backward(dh), addingGradient: dh)
        releaseActivations()
        return dx
    }

    /// The block's computation, with `attend` the attention sublayer's forward (over whole sequences, or over
    /// cached ones when generating); the sublayers keep what their backward needs. The first residual add is
    /// taken into the MLP norm's pass.
    func run(_ x: Tensor, attend: (Tensor) throws -> Tensor) throws -> Tensor {
        let a = try attend(attentionNorm.forward(x))
        let (h, normalized) = try mlpNorm.forward(x, adding: a)
        return try backend.add(h, mlp.forward(normalized))
    }

    /// The block for generation with its last residual add left to the caller: `pending` (the block before's MLP
    /// output, not yet added to `x`) is added inside this block's first norm, and this block's MLP output comes back
    /// unadded with the residual stream — one add kernel fewer per block in a decode step, which is bound by small
    /// kernels. The caller adds the last one inside the final norm.
    func run(_ x: Tensor, pending: Tensor?, attend: (Tensor) throws -> Tensor) throws -> (x: Tensor, pending: Tensor) {
        let (residual, normalized) = try attentionNorm.forward(x, addingIfAny: pending)
        let (h, mlpInput) = try mlpNorm.forward(residual, adding: attend(normalized))
        return (h, try mlp.forward(mlpInput))
    }

    /// Forgets everything the sublayers kept for backward.
    public func releaseActivations() {
        attentionNorm.releaseActivations()
        attention.releaseActivations()
        mlpNorm.releaseActivations()
        mlp.releaseActivations()
    }
}
