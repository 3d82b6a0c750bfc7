/// Multi-head (or grouped-query) self-attention with its four projections: causal for decoders, bidirectional over
/// padded sequences for encoders.
///
/// The projections are ``Module``s so SLoPe conversion can swap a ``Linear`` for a ``SparseLinear``.
/// With a rotary base, queries and keys are rotated (LLaMA); otherwise positions come from the embedding.
public final class SelfAttention: Layer {
    public var query: any Module
    public var key: any Module
    public var value: any Module
    public var output: any Module
    public let heads: Int
    public let keyValueHeads: Int
    public let headDimension: Int
    public let ropeBase: Float?
    /// Whether a position sees only itself and earlier ones (decoders); an encoder's attention is bidirectional.
    public var causal = true
    /// Dropout of the attention probabilities while training (``SeededDropout``), active only while
    /// ``dropoutSeed`` is set, as ``Dropout``'s: backward recomputes the mask from the seed the forward pass used.
    public var dropoutProbability: Double = 0
    /// The seed of the next forward pass's attention-dropout mask; nil: no dropout.
    public var dropoutSeed: UInt64?
    let backend: any Backend
    private var saved: (
        q: Tensor, k: Tensor, v: Tensor, attention: AttentionOutput, shape: AttentionShape, rope: RotaryLayout?,
        padding: UnpaddedRows?  // (the unpadded rows padded around the attention call, where they were)
    )?

    init(query: any Module, key: any Module, value: any Module, output: any Module, heads: Int, keyValueHeads: Int,
         headDimension: Int, ropeBase: Float?, backend: any Backend) {
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.heads = heads
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
        self.ropeBase = ropeBase
        self.backend = backend
    }

    public var projections: [any Module] { [query, key, value, output] }
    public var parameters: [Parameter] { projections.flatMap(\.parameters) }
    public var sparseWeights: [SparseWeight] { projections.flatMap(\.sparseWeights) }

    /// `x [batch·sequence, hidden]` → same shape; `keyLengths`: each sequence's real tokens (padding after them is
    /// never attended to), nil when none is padded. With `unpadded`, `x` holds only the real rows
    /// (`[unpadded.count, hidden]`, the key lengths `unpadded.lengths`): the projections run on those, and attention
    /// takes them packed where the backend can (``AttentionShape/packedRows``), else q, k and v padded back around it.
    public func forward(_ x: Tensor, batch: Int, sequence: Int, keyLengths: [Int]? = nil, unpadded: UnpaddedRows? = nil) throws -> Tensor {
        let rope = ropeBase.map { RotaryLayout(sequenceLength: sequence, headDimension: headDimension, base: $0) }
        var q = try query.forward(x), k = try key.forward(x), v = try value.forward(x)
        var shape = AttentionShape(
            batch: batch, queryLength: sequence, keyLength: sequence, queryHeads: heads, keyValueHeads: keyValueHeads,
            headDimension: headDimension, causal: causal, keyLengths: unpadded?.lengths ?? keyLengths,
            dropout: dropoutProbability > 0 ? dropoutSeed.map { SeededDropout(probability: dropoutProbability, seed: $0) } : nil)
        // Rows packed as they are (no pad/unpad copies) where the backend takes them; rotary embeddings index rows
        // by sequence position, so a rotated model pads.
        var padded = unpadded
        if let unpadded, rope == nil {
            var packed = shape
            packed.packedRows = unpadded.count
            if backend.takesPackedAttention(packed, dtype: x.dtype) { (shape, padded) = (packed, nil) }
        }
        if let padded { (q, k, v) = (try padded.pad(q), try padded.pad(k), try padded.pad(v)) }
        if let rope {
            q = try backend.rotaryEmbedding(q, layout: rope, inverse: false)
            k = try backend.rotaryEmbedding(k, layout: rope, inverse: false)
        }
        let attention = try backend.attention(query: q, key: k, value: v, shape: shape)
        saved = (q, k, v, attention, shape, rope, padded)
        return try output.forward(padded?.unpad(attention.output) ?? attention.output)
    }

    /// q, k and v of `x`: one stacked projection's parts where generation has stacked them (``stackQueryKeyValue()``).
    func queryKeyValue(_ x: Tensor) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        if let stacked = stackedQueryKeyValue {
            let outputs = try stacked.forward(x)
            return (outputs[0], outputs[1], outputs[2])
        }
        return (try query.forward(x), try key.forward(x), try value.forward(x))
    }

    /// The projection q, k and v are parts 0, 1 and 2 of, where generation has stacked them.
    var stackedQueryKeyValue: StackedProjection? {
        let parts = [query, key, value].compactMap { $0 as? StackedProjection.Part }
        guard parts.count == 3, let stacked = parts.first?.projection, parts.map(\.index) == [0, 1, 2],
              parts.allSatisfy({ $0.projection === stacked }) else { return nil }
        return stacked
    }

    /// Replaces q, k and v by one ``StackedProjection`` (inference only); false where they cannot be stacked
    /// (SLoPe layers not merged, or projections of different kinds).
    @discardableResult
    public func stackQueryKeyValue() throws -> Bool {
        guard let stacked = try StackedProjection(stacking: [query, key, value], backend: backend) else { return false }
        (query, key, value) = (StackedProjection.Part(stacked, index: 0), StackedProjection.Part(stacked, index: 1), StackedProjection.Part(stacked, index: 2))
        return true
    }

    /// Forgets q, k, v, the attention output and its statistics, and the projections' inputs.
    public func releaseActivations() {
        saved = nil
        for projection in projections { projection.releaseActivations() }
    }

    public func backward(_ dy: Tensor) throws -> Tensor { try backward(dy, into: nil) }

    /// `dx +=` the input gradient, inside the q, k and v projections' GEMMs (beta = 1): a residual's gradient takes
    /// this branch's without an add of its own. `dx` may be `dy` itself (a post-norm block whose dropout is off).
    public func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor) throws { _ = try backward(dy, into: dx) }

    private func backward(_ dy: Tensor, into target: Tensor?) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "SelfAttention.backward", reason: "call forward first")
        }
        var dAttention = try output.backward(dy)
        if let padding = saved.padding { dAttention = try padding.pad(dAttention) }
        let gradients = try backend.attentionBackward(
            dAttention, query: saved.q, key: saved.k, value: saved.v, saved: saved.attention, shape: saved.shape)
        var (dq, dk, dv) = (gradients.query, gradients.key, gradients.value)
        if let rope = saved.rope {
            dq = try backend.rotaryEmbedding(dq, layout: rope, inverse: true)
            dk = try backend.rotaryEmbedding(dk, layout: rope, inverse: true)
        }
        if let padding = saved.padding { (dq, dk, dv) = (try padding.unpad(dq), try padding.unpad(dk), try padding.unpad(dv)) }
        // (dy was read for the last time by the output projection: a target that is dy itself may be written now.)
        let dx = try query.backward(dq, addingInputGradientTo: target, backend)
        try key.backward(dk, addingInputGradientTo: dx, backend)
        try value.backward(dv, addingInputGradientTo: dx, backend)
        return dx
    }
}
