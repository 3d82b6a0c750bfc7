/// A decoder-only language model (GPT-2/OPT or LLaMA family) with forward and backward passes.
///
/// Parameter names follow Hugging Face's OPT and LLaMA checkpoints (`model.decoder.layers.0.fc1.weight`,
/// `model.layers.0.mlp.gate_proj.weight`), so checkpoints and exports map one to one.
///
/// ```swift
/// let model = try TransformerModel(configuration: .named("tiny"), backend: cpu, seed: 0)
/// let loss = try model.loss(tokens: ids, targets: next, batch: 8, sequence: 128)
/// try model.backward()
/// ```
public final class TransformerModel: Layer {
    public let configuration: ModelConfiguration
    public let dtype: DType
    public let tokenEmbedding: Embedding
    /// Learned positions (GPT family).
    public let positionEmbedding: Embedding?
    public let blocks: [TransformerBlock]
    public let finalNorm: any ResidualNorm
    /// The output projection when embeddings are not tied.
    public let head: Linear?
    let backend: any Backend
    private let lossFunction: SoftmaxCrossEntropy
    private var savedHidden: Tensor?

    public init(configuration: ModelConfiguration, dtype: DType = .float32, backend: any Backend, seed: UInt64) throws {
        try configuration.validate()
        try MemoryBudget.require(
            configuration.checkedParameterCount.flatMap { CheckedSize.product([$0, dtype.byteSize]) },
            for: "a \(configuration.family) model of \(configuration.parameterCount) parameters (its \(dtype) weights alone)", on: backend)
        self.configuration = configuration
        self.dtype = dtype
        self.backend = backend
        lossFunction = SoftmaxCrossEntropy(backend: backend)
        var generator = SeededGenerator(seed: seed)
        let c = configuration
        let prefix = c.family == .gpt ? "model.decoder." : "model."
        tokenEmbedding = try Embedding(
            name: prefix + "embed_tokens", vocabularySize: c.vocabularySize, features: c.hiddenSize, dtype: dtype,
            backend: backend, generator: &generator)
        positionEmbedding = c.family == .gpt
            ? try Embedding(
                name: prefix + "embed_positions", vocabularySize: c.contextLength + ModelConfiguration.positionOffset,
                features: c.hiddenSize, std: 0.01, dtype: dtype, backend: backend, generator: &generator)
            : nil
        // GPT-2's initialisation: N(0, 0.02²) weights, zero biases, residual outputs scaled by 1/√(2·layers).
        let residualStd = 0.02 / (2 * Double(c.layers)).squareRoot()
        func linear(_ name: String, _ input: Int, _ output: Int, std: Double = 0.02) throws -> Linear {
            try Linear(
                name: name, weight: backend.randomNormal([output, input], std: std, dtype: dtype, using: &generator),
                bias: c.hasBias ? backend.zeros([output], dtype: dtype) : nil, backend: backend)
        }
        func norm(_ name: String) throws -> any ResidualNorm {
            c.family == .gpt
                ? try LayerNorm(name: name, features: c.hiddenSize, epsilon: c.normEpsilon, dtype: dtype, backend: backend)
                : try RMSNorm(name: name, features: c.hiddenSize, epsilon: c.normEpsilon, dtype: dtype, backend: backend)
        }
        let kv = c.keyValueHeads * c.headDimension
        blocks = try (0..<c.layers).map { index in
            let p = "\(prefix)layers.\(index)."
            let attention = SelfAttention(
                query: try linear(p + "self_attn.q_proj", c.hiddenSize, c.hiddenSize),
                key: try linear(p + "self_attn.k_proj", c.hiddenSize, kv),
                value: try linear(p + "self_attn.v_proj", c.hiddenSize, kv),
                output: try linear(p + (c.family == .gpt ? "self_attn.out_proj" : "self_attn.o_proj"), c.hiddenSize, c.hiddenSize, std: residualStd),
                heads: c.heads, keyValueHeads: c.keyValueHeads, headDimension: c.headDimension,
                ropeBase: c.family == .llama ? c.ropeBase : nil, backend: backend)
            let mlp: FeedForward
            switch c.family {
            case .gpt:
                mlp = FeedForward(
                    up: try linear(p + "fc1", c.hiddenSize, c.intermediateSize),
                    down: try linear(p + "fc2", c.intermediateSize, c.hiddenSize, std: residualStd),
                    gate: nil, activation: c.activation, backend: backend)
            case .llama:
                mlp = FeedForward(
                    up: try linear(p + "mlp.up_proj", c.hiddenSize, c.intermediateSize),
                    down: try linear(p + "mlp.down_proj", c.intermediateSize, c.hiddenSize, std: residualStd),
                    gate: try linear(p + "mlp.gate_proj", c.hiddenSize, c.intermediateSize), activation: .silu, backend: backend)
            }
            return TransformerBlock(
                attentionNorm: try norm(p + (c.family == .gpt ? "self_attn_layer_norm" : "input_layernorm")),
                attention: attention,
                mlpNorm: try norm(p + (c.family == .gpt ? "final_layer_norm" : "post_attention_layernorm")),
                mlp: mlp, backend: backend)
        }
        finalNorm = try norm(c.family == .gpt ? prefix + "final_layer_norm" : prefix + "norm")
        head = c.tiedEmbeddings
            ? nil
            : try Linear(
                name: "lm_head", weight: backend.randomNormal([c.vocabularySize, c.hiddenSize], std: 0.02, dtype: dtype, using: &generator),
                bias: nil, backend: backend)
    }

    public var parameters: [Parameter] {
        tokenEmbedding.parameters + (positionEmbedding?.parameters ?? []) + blocks.flatMap(\.parameters)
            + finalNorm.parameters + (head?.parameters ?? [])
    }
    public var sparseWeights: [SparseWeight] { blocks.flatMap(\.sparseWeights) }

    /// Every linear layer of the blocks, in order (what SLoPe conversion looks at).
    public var blockProjections: [(block: Int, module: any Module)] {
        blocks.enumerated().flatMap { index, block in
            (block.attention.projections + block.mlp.projections).map { (index, $0) }
        }
    }

    /// Recompute each block's activations in backward instead of keeping them (see
    /// ``TransformerBlock/recomputesActivations``): less memory, one more forward pass of compute.
    public var recomputesActivations: Bool {
        get { blocks.first?.recomputesActivations ?? false }
        set { for block in blocks { block.recomputesActivations = newValue } }
    }

    // MARK: Forward and backward

    /// Next-token logits `[batch·sequence, vocabulary]` for `tokens` (`int32 [batch·sequence]`). Generation
    /// continues cached sequences instead: ``nextTokenLogits(tokens:segments:cache:)``.
    public func logits(tokens: Tensor, batch: Int, sequence: Int) throws -> Tensor {
        guard tokens.count == batch * sequence, tokens.dtype == .int32 else {
            throw TensorError.shapeMismatch(
                operation: "TransformerModel", shapes: [tokens.shape], reason: "expected \(batch)·\(sequence) int32 token ids")
        }
        guard sequence <= configuration.contextLength || positionEmbedding == nil else {
            throw TensorError.invalidArgument(
                operation: "TransformerModel", reason: "\(sequence) positions exceed the context length \(configuration.contextLength)")
        }
        var x = try embed(tokens, positions: (0..<batch * sequence).map { $0 % sequence })
        for block in blocks { x = try block.forward(x, batch: batch, sequence: sequence) }
        let hidden = try finalNorm.forward(x)
        savedHidden = hidden
        return try project(hidden)
    }

    /// Token embeddings, plus learned position embeddings (OPT) at `positions`, one per token.
    func embed(_ tokens: Tensor, positions: [Int]) throws -> Tensor {
        guard positionEmbedding != nil else { return try embed(tokens, positionIDs: nil) }
        let ids = positions.map { Int32(ModelConfiguration.positionOffset + $0) }
        return try embed(tokens, positionIDs: backend.tensor(ids, shape: [ids.count]))
    }

    /// Token embeddings, plus the learned position embeddings' rows `positionIDs` where the model has them.
    func embed(_ tokens: Tensor, positionIDs: Tensor?) throws -> Tensor {
        let x = try tokenEmbedding.forward(tokens)
        guard let positionEmbedding, let positionIDs else { return x }
        return try backend.add(x, positionEmbedding.forward(positionIDs))
    }

    /// Logits of normalized hidden states: the head, or the tied embedding.
    func project(_ hidden: Tensor) throws -> Tensor {
        if let head { return try head.forward(hidden) }
        return try backend.matmul(hidden, tokenEmbedding.weight.value, transposeB: true)
    }

    /// Mean next-token cross-entropy of `targets` (`int32 [batch·sequence]`; −100 is ignored).
    public func loss(tokens: Tensor, targets: Tensor, batch: Int, sequence: Int) throws -> Double {
        try lossFunction.forward(logits: logits(tokens: tokens, batch: batch, sequence: sequence), targets: targets)
    }

    /// Backpropagates `scale · loss` of the last ``loss(tokens:targets:batch:sequence:)`` into every gradient.
    /// `gradientsReady` receives each block's gradients as soon as its backward is done (last block first), then
    /// the embeddings', the final norm's and the head's: every gradient once, none written again this pass (data
    /// parallelism averages them meanwhile).
    public func backward(scale: Float = 1, gradientsReady: (([Tensor]) throws -> Void)? = nil) throws {
        guard let hidden = savedHidden else {
            throw TensorError.invalidArgument(operation: "TransformerModel.backward", reason: "call loss(...) first")
        }
        let dLogits = try lossFunction.backward(scale: scale)
        var dx: Tensor
        if let head {
            dx = try head.backward(dLogits)
        } else {
            _ = try backend.gemm(
                dLogits, hidden, transposeA: true, transposeB: false, alpha: 1, beta: 1,
                into: tokenEmbedding.weight.gradientBuffer(backend), bias: nil)
            dx = try backend.matmul(dLogits, tokenEmbedding.weight.value)
        }
        dx = try finalNorm.backward(dx)
        for block in blocks.reversed() {
            dx = try block.backward(dx)
            try gradientsReady?(block.parameters.compactMap(\.gradient) + block.sparseWeights.compactMap(\.gradient))
        }
        try positionEmbedding?.backward(dx)
        try tokenEmbedding.backward(dx)
        let rest = tokenEmbedding.parameters + (positionEmbedding?.parameters ?? []) + finalNorm.parameters + (head?.parameters ?? [])
        try gradientsReady?(rest.compactMap(\.gradient))
    }
}
