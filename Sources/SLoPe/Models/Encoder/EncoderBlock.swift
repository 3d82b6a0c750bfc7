/// One post-norm encoder block (BERT): `h = norm₁(x + dropout(attention(x)))`, `y = norm₂(h + dropout(mlp(h)))`,
/// attention bidirectional over each sequence's real tokens (dropout only while training: ``Dropout``).
public final class EncoderBlock: Layer {
    public let attention: SelfAttention
    public let attentionNorm: LayerNorm
    public let mlp: FeedForward
    public let mlpNorm: LayerNorm
    public let attentionDropout: Dropout
    public let outputDropout: Dropout
    let backend: any Backend

    init(
        attention: SelfAttention, attentionNorm: LayerNorm, mlp: FeedForward, mlpNorm: LayerNorm, attentionDropout: Dropout,
        outputDropout: Dropout, backend: any Backend
    ) {
        self.attentionDropout = attentionDropout
        self.outputDropout = outputDropout
        attention.causal = false
        self.attention = attention
        self.attentionNorm = attentionNorm
        self.mlp = mlp
        self.mlpNorm = mlpNorm
        self.backend = backend
    }

    public var parameters: [Parameter] { attention.parameters + attentionNorm.parameters + mlp.parameters + mlpNorm.parameters }
    public var sparseWeights: [SparseWeight] { attention.sparseWeights + mlp.sparseWeights }

    /// Keep only the block's input between the passes and recompute the rest before `backward` (activation
    /// checkpointing, as ``TransformerBlock/recomputesActivations``). Dropout masks are functions of their seeds,
    /// which stay set until the next pass, so the recomputation drops what the first forward dropped: the gradients
    /// are the same.
    public var recomputesActivations = false
    private var recomputeInput: (x: Tensor, batch: Int, sequence: Int, lengths: [Int]?, unpadded: UnpaddedRows?)?

    /// `x [batch·sequence, hidden]` → same shape; `lengths`: each sequence's real tokens (nil: none padded). With
    /// `unpadded`, `x` holds only the real rows (`[unpadded.count, hidden]`) and so does the result.
    public func forward(_ x: Tensor, batch: Int, sequence: Int, lengths: [Int]?, unpadded: UnpaddedRows? = nil) throws -> Tensor {
        let y = try run(x, batch: batch, sequence: sequence, lengths: lengths, unpadded: unpadded)
        if recomputesActivations {
            recomputeInput = (x, batch, sequence, lengths, unpadded)
            releaseActivations()
        }
        return y
    }

    private func run(_ x: Tensor, batch: Int, sequence: Int, lengths: [Int]?, unpadded: UnpaddedRows?) throws -> Tensor {
        // Each branch's dropout runs inside the norm's pass that adds it (no pass of its own).
        let a = try attention.forward(x, batch: batch, sequence: sequence, keyLengths: lengths, unpadded: unpadded)
        let h = try attentionNorm.forward(x, adding: a, dropping: attentionDropout.draw()).output
        return try mlpNorm.forward(h, adding: mlp.forward(h), dropping: outputDropout.draw()).output
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        if let saved = recomputeInput {
            recomputeInput = nil
            _ = try run(saved.x, batch: saved.batch, sequence: saved.sequence, lengths: saved.lengths, unpadded: saved.unpadded)
        }
        defer { if recomputesActivations { releaseActivations() } }
        // Each norm's input is a residual sum: its gradient reaches both addends — the branch's dropped in the norm's
        // pass, and the branch's input gradient added into the residual's inside the branch's first GEMMs.
        let (dh, dMLP) = try mlpNorm.backward(dy, droppingInputGradient: outputDropout.savedDraw)
        try mlp.backward(dMLP, addingInputGradientTo: dh)
        let (dx, dAttention) = try attentionNorm.backward(dh, droppingInputGradient: attentionDropout.savedDraw)
        try attention.backward(dAttention, addingInputGradientTo: dx)
        return dx
    }

    public func releaseActivations() {
        attention.releaseActivations()
        attentionNorm.releaseActivations()
        mlp.releaseActivations()
        mlpNorm.releaseActivations()
    }
}
