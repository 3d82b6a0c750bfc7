/// A BERT-style encoder with its pretraining heads (masked-language model, next sentence), forward and backward.
///
/// Parameter names follow Hugging Face's `BertForMaskedLM` (`bert.encoder.layer.0.attention.self.query.weight`,
/// `cls.predictions.transform.dense.weight`), so checkpoints can map one to one. Sequences in a batch may be padded:
/// `lengths` gives each one's real tokens, and attention never looks at the padding. The blocks run on the real
/// tokens only (``removesPadding``): the encoder's output is zero at the padding unless a head asks for it.
///
/// ```swift
/// let bert = try EncoderModel(configuration: .named("tiny-bert"), backend: cpu, seed: 0)
/// let loss = try bert.maskedLanguageModelLoss(tokens: ids, tokenTypes: types, labels: labels, lengths: lengths, batch: 8, sequence: 128)
/// try bert.backward()
/// ```
public final class EncoderModel: Layer {
    public private(set) var configuration: EncoderConfiguration
    public let dtype: DType
    public let wordEmbedding: Embedding
    public let positionEmbedding: Embedding
    public let typeEmbedding: Embedding
    public let embeddingNorm: LayerNorm
    public let embeddingDropout: Dropout
    public let blocks: [EncoderBlock]
    /// The MLM head: dense + activation + LayerNorm, then the word embeddings (tied) and a bias per token.
    public let transform: Linear
    public let transformActivation: ActivationLayer
    public let transformNorm: LayerNorm
    public let decoderBias: Parameter
    /// The pooler (dense + tanh on each sequence's first token, `[CLS]`) and the next-sentence classifier over it.
    public let pooler: Linear
    public let poolerActivation: ActivationLayer
    public let nextSentence: Linear
    /// Where the model's tensors live.
    public let backend: any Backend
    private let lossFunction: SoftmaxCrossEntropy
    private let nextSentenceLoss: SoftmaxCrossEntropy
    /// What the MLM head's backward needs: the transformed rows it predicted at, which rows those were, of how many.
    private var saved: (transformed: Tensor, rows: [Int], total: Int)?
    /// Where the pooler read (each sequence's first row), when the last loss included next-sentence prediction.
    private var pooledRows: [Int]?
    /// Whether the blocks of a padded batch run on its real tokens alone (``UnpaddedRows``), attention padding them
    /// back for its own call: the same result for less work. Off, every padded position goes through them too
    /// (what the measurements of the saving compare against).
    public var removesPadding = true
    /// The real rows of the last ``encode(tokens:tokenTypes:lengths:batch:sequence:)``, where it removed padding.
    private var unpadded: UnpaddedRows?

    public init(configuration: EncoderConfiguration, dtype: DType = .float32, backend: any Backend, seed: UInt64) throws {
        try configuration.validate()
        try MemoryBudget.require(
            configuration.checkedParameterCount.flatMap { CheckedSize.product([$0, dtype.byteSize]) },
            for: "an encoder of \(configuration.checkedParameterCount ?? .max) parameters (its \(dtype) weights alone)", on: backend)
        self.configuration = configuration
        self.dtype = dtype
        self.backend = backend
        lossFunction = SoftmaxCrossEntropy(backend: backend)
        nextSentenceLoss = SoftmaxCrossEntropy(backend: backend)
        var generator = SeededGenerator(seed: seed)
        let c = configuration
        func embedding(_ name: String, _ rows: Int) throws -> Embedding {
            try Embedding(name: "bert.embeddings." + name, vocabularySize: rows, features: c.hiddenSize, dtype: dtype, backend: backend, generator: &generator)
        }
        // BERT's initialisation: N(0, 0.02²) weights, zero biases, unit norms.
        func linear(_ name: String, _ input: Int, _ output: Int) throws -> Linear {
            try Linear(
                name: name, weight: backend.randomNormal([output, input], std: 0.02, dtype: dtype, using: &generator),
                bias: backend.zeros([output], dtype: dtype), backend: backend)
        }
        func norm(_ name: String) throws -> LayerNorm {
            try LayerNorm(name: name, features: c.hiddenSize, epsilon: c.normEpsilon, dtype: dtype, backend: backend)
        }
        wordEmbedding = try embedding("word_embeddings", c.vocabularySize)
        positionEmbedding = try embedding("position_embeddings", c.contextLength)
        typeEmbedding = try embedding("token_type_embeddings", c.typeVocabularySize)
        embeddingNorm = try norm("bert.embeddings.LayerNorm")
        let dropout = c.dropoutProbability
        embeddingDropout = try Dropout(probability: dropout, backend: backend)
        blocks = try (0..<c.layers).map { index in
            let p = "bert.encoder.layer.\(index)."
            let attention = SelfAttention(
                query: try linear(p + "attention.self.query", c.hiddenSize, c.hiddenSize),
                key: try linear(p + "attention.self.key", c.hiddenSize, c.hiddenSize),
                value: try linear(p + "attention.self.value", c.hiddenSize, c.hiddenSize),
                output: try linear(p + "attention.output.dense", c.hiddenSize, c.hiddenSize),
                heads: c.heads, keyValueHeads: c.heads, headDimension: c.headDimension, ropeBase: nil, backend: backend)
            attention.dropoutProbability = c.attentionDropoutProbability
            let mlp = FeedForward(
                up: try linear(p + "intermediate.dense", c.hiddenSize, c.intermediateSize),
                down: try linear(p + "output.dense", c.intermediateSize, c.hiddenSize), gate: nil, activation: c.activation, backend: backend)
            return EncoderBlock(
                attention: attention, attentionNorm: try norm(p + "attention.output.LayerNorm"), mlp: mlp,
                mlpNorm: try norm(p + "output.LayerNorm"), attentionDropout: try Dropout(probability: dropout, backend: backend),
                outputDropout: try Dropout(probability: dropout, backend: backend), backend: backend)
        }
        transform = try linear("cls.predictions.transform.dense", c.hiddenSize, c.hiddenSize)
        transformActivation = ActivationLayer(c.activation, backend: backend)
        transformNorm = try norm("cls.predictions.transform.LayerNorm")
        decoderBias = Parameter(name: "cls.predictions.bias", value: try backend.zeros([c.vocabularySize], dtype: dtype))
        pooler = try linear("bert.pooler.dense", c.hiddenSize, c.hiddenSize)
        poolerActivation = ActivationLayer(.tanh, backend: backend)
        nextSentence = try linear("cls.seq_relationship", c.hiddenSize, 2)
    }

    public var parameters: [Parameter] {
        wordEmbedding.parameters + positionEmbedding.parameters + typeEmbedding.parameters + embeddingNorm.parameters
            + blocks.flatMap(\.parameters) + transform.parameters + transformNorm.parameters + [decoderBias]
            + pooler.parameters + nextSentence.parameters
    }
    public var sparseWeights: [SparseWeight] { blocks.flatMap(\.sparseWeights) }

    /// Sets the training dropout of every dropout layer (and the configuration's `hiddenDropout`, which checkpoints
    /// and exports record).
    public func setDropout(_ probability: Double) throws {
        try DropoutMask.check(probability, "EncoderModel.setDropout")
        configuration.hiddenDropout = probability
        for layer in dropoutLayers { layer.probability = probability }
    }

    /// Sets the training dropout of the attention probabilities (and the configuration's `attentionDropout`).
    public func setAttentionDropout(_ probability: Double) throws {
        try DropoutMask.check(probability, "EncoderModel.setAttentionDropout")
        configuration.attentionDropout = probability
        for block in blocks { block.attention.dropoutProbability = probability }
    }

    /// Recompute each block's activations in backward instead of keeping them (``EncoderBlock/recomputesActivations``):
    /// less memory, one more forward pass of compute.
    public var recomputesActivations: Bool {
        get { blocks.first?.recomputesActivations ?? false }
        set { for block in blocks { block.recomputesActivations = newValue } }
    }

    var dropoutLayers: [Dropout] { [embeddingDropout] + blocks.flatMap { [$0.attentionDropout, $0.outputDropout] } }

    /// The seed of the next forward pass's dropout masks (each dropout layer draws its own from it); nil — the
    /// default, and what evaluation and inference use — drops nothing. Trainers set a new one for every pass.
    public var dropoutSeed: UInt64? {
        didSet {
            let layers = dropoutLayers
            for (index, layer) in layers.enumerated() { layer.seed = dropoutSeed.map { DropoutMask.layerSeed($0, layer: index) } }
            for (index, block) in blocks.enumerated() {  // attention probabilities: seeds after the dropout layers'
                block.attention.dropoutSeed = dropoutSeed.map { DropoutMask.layerSeed($0, layer: layers.count + index) }
            }
        }
    }

    // MARK: Forward

    /// The encoder's output `[batch·sequence, hidden]` for `tokens` and `tokenTypes` (`int32 [batch·sequence]`);
    /// `lengths`: each sequence's real tokens, the rest padding (nil: none). The padding's rows come out zero, unless
    /// `computingPadding` (or ``removesPadding`` off) runs them through the blocks as transformers does — what a head
    /// that reads every row needs to match it (question answering's logits at padded positions enter its loss).
    public func encode(
        tokens: Tensor, tokenTypes: Tensor, lengths: [Int]?, batch: Int, sequence: Int, computingPadding: Bool = false
    ) throws -> Tensor {
        guard tokens.count == batch * sequence, tokenTypes.count == tokens.count, tokens.dtype == .int32, tokenTypes.dtype == .int32 else {
            throw TensorError.shapeMismatch(
                operation: "EncoderModel", shapes: [tokens.shape, tokenTypes.shape], reason: "expected \(batch)·\(sequence) int32 token ids and token types")
        }
        guard sequence <= configuration.contextLength else {
            throw TensorError.invalidArgument(operation: "EncoderModel", reason: "\(sequence) positions exceed the context length \(configuration.contextLength)")
        }
        let positions = try backend.tensor((0..<batch * sequence).map { Int32($0 % sequence) }, shape: [batch * sequence])
        let summed = try backend.add(
            backend.add(wordEmbedding.forward(tokens), positionEmbedding.forward(positions)), typeEmbedding.forward(tokenTypes))
        var x = try embeddingDropout.forward(embeddingNorm.forward(summed))
        unpadded = try removesPadding && !computingPadding ? lengths.flatMap { try UnpaddedRows(lengths: $0, batch: batch, sequence: sequence, backend: backend) } : nil
        if let unpadded { x = try unpadded.unpad(x) }
        for block in blocks { x = try block.forward(x, batch: batch, sequence: sequence, lengths: lengths, unpadded: unpadded) }
        return try unpadded?.pad(x) ?? x
    }

    /// MLM logits `[rows.count, vocabulary]` at rows `rows` of the encoder's output `hidden`.
    public func maskedLanguageModelLogits(_ hidden: Tensor, rows: [Int]) throws -> Tensor {
        let selected = try backend.gatherRows(hidden, rows)
        let transformed = try transformNorm.forward(transformActivation.forward(transform.forward(selected)))
        saved = (transformed, rows, hidden.shape[0])
        return try backend.gemm(
            transformed, wordEmbedding.weight.value, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: decoderBias.value)
    }

    /// Mean cross-entropy of the masked positions: `labels` (`int32 [batch·sequence]`) hold the original token where
    /// a prediction is made and −100 elsewhere; only those rows go through the MLM head.
    public func maskedLanguageModelLoss(
        tokens: Tensor, tokenTypes: Tensor, labels: [Int32], lengths: [Int]?, batch: Int, sequence: Int
    ) throws -> Double {
        guard labels.count == batch * sequence else {
            throw TensorError.shapeMismatch(operation: "EncoderModel", shapes: [[labels.count]], reason: "one label per token")
        }
        let rows = labels.indices.filter { labels[$0] != Self.ignoredLabel }
        guard !rows.isEmpty else { throw TensorError.invalidArgument(operation: "EncoderModel", reason: "no position to predict (every label is -100)") }
        let hidden = try encode(tokens: tokens, tokenTypes: tokenTypes, lengths: lengths, batch: batch, sequence: sequence)
        let logits = try maskedLanguageModelLogits(hidden, rows: rows)
        pooledRows = nil
        return try lossFunction.forward(logits: logits, targets: backend.tensor(rows.map { labels[$0] }, shape: [rows.count]))
    }

    /// The pooled output `[batch, hidden]`: `tanh(dense(·))` of each sequence's first row (`[CLS]`) of `hidden`.
    public func pooled(_ hidden: Tensor, batch: Int, sequence: Int) throws -> Tensor {
        let rows = (0..<batch).map { $0 * sequence }
        pooledRows = rows
        return try poolerActivation.forward(pooler.forward(backend.gatherRows(hidden, rows)))
    }

    /// BERT's pretraining losses: the masked-LM loss as ``maskedLanguageModelLoss(tokens:tokenTypes:labels:lengths:batch:sequence:)``
    /// and the next-sentence loss (`nextSentenceLabels`: per sequence, 1 where B is from another document), both
    /// means; ``backward(scale:)`` then takes their sum, as transformers' `BertForPreTraining`.
    public func pretrainingLosses(
        tokens: Tensor, tokenTypes: Tensor, labels: [Int32], nextSentenceLabels: [Int32], lengths: [Int]?, batch: Int, sequence: Int
    ) throws -> (maskedLM: Double, nextSentence: Double) {
        guard nextSentenceLabels.count == batch, nextSentenceLabels.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw TensorError.invalidArgument(operation: "EncoderModel", reason: "one next-sentence label (0 or 1) per sequence")
        }
        let rows = labels.indices.filter { labels[$0] != Self.ignoredLabel }
        guard labels.count == batch * sequence, !rows.isEmpty else {
            throw TensorError.invalidArgument(operation: "EncoderModel", reason: "one label per token, at least one position to predict")
        }
        let hidden = try encode(tokens: tokens, tokenTypes: tokenTypes, lengths: lengths, batch: batch, sequence: sequence)
        let maskedLM = try lossFunction.forward(
            logits: maskedLanguageModelLogits(hidden, rows: rows), targets: backend.tensor(rows.map { labels[$0] }, shape: [rows.count]))
        let nextSentenceLogits = try nextSentence.forward(pooled(hidden, batch: batch, sequence: sequence))
        let next = try nextSentenceLoss.forward(logits: nextSentenceLogits, targets: backend.tensor(nextSentenceLabels, shape: [batch]))
        return (maskedLM, next)
    }

    /// Label of positions that are not predicted.
    public static let ignoredLabel: Int32 = -100

    // MARK: Backward

    /// Backpropagates `scale · loss` of the last ``maskedLanguageModelLoss(tokens:tokenTypes:labels:lengths:batch:sequence:)``
    /// (or `scale · (masked-LM + next-sentence loss)` of the last ``pretrainingLosses(tokens:tokenTypes:labels:nextSentenceLabels:lengths:batch:sequence:)``)
    /// into every gradient.
    public func backward(scale: Float = 1) throws {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "EncoderModel.backward", reason: "call maskedLanguageModelLoss(...) first")
        }
        let dLogits = try lossFunction.backward(scale: scale)
        // logits = t·Wᵀ + b, W the (tied) word embeddings.
        _ = try backend.gemm(
            dLogits, saved.transformed, transposeA: true, transposeB: false, alpha: 1, beta: 1,
            into: wordEmbedding.weight.gradientBuffer(backend), bias: nil)
        try backend.accumulateColumnSums(dLogits, into: decoderBias.gradientBuffer(backend))
        let dTransformed = try backend.matmul(dLogits, wordEmbedding.weight.value)
        let dSelected = try transform.backward(transformActivation.backward(transformNorm.backward(dTransformed)))
        // Only the predicted rows have a gradient from the head.
        let dx = try backend.zeros([saved.total, configuration.hiddenSize], dtype: dSelected.dtype)
        try backend.moveRows(dSelected, from: nil, into: dx, to: saved.rows)
        if pooledRows != nil {
            try backend.accumulate(poolerBackward(nextSentence.backward(nextSentenceLoss.backward(scale: scale)), rows: saved.total), into: dx, alpha: 1)
        }
        self.saved = nil
        try backward(hiddenGradient: dx)
    }

    /// The gradient that reaches the encoder's output `[rows, hidden]` through the pooler from `dPooled [batch, hidden]`
    /// (the last ``pooled(_:batch:sequence:)``'s): each sequence's first row, zero elsewhere.
    public func poolerBackward(_ dPooled: Tensor, rows: Int) throws -> Tensor {
        guard let pooledRows else {
            throw TensorError.invalidArgument(operation: "EncoderModel.poolerBackward", reason: "call pooled(...) first")
        }
        let dFirst = try pooler.backward(poolerActivation.backward(dPooled))
        let spread = try backend.zeros([rows, configuration.hiddenSize], dtype: dFirst.dtype)
        try backend.moveRows(dFirst, from: nil, into: spread, to: pooledRows)
        self.pooledRows = nil
        return spread
    }

    /// Backpropagates a gradient of the last ``encode(tokens:tokenTypes:lengths:batch:sequence:)``'s output through the
    /// blocks into the embeddings (what a task head on top of the encoder calls).
    public func backward(hiddenGradient: Tensor) throws {
        var dx = try unpadded?.unpad(hiddenGradient) ?? hiddenGradient
        for block in blocks.reversed() { dx = try block.backward(dx) }
        if let unpadded { dx = try unpadded.pad(dx) }
        let dSummed = try embeddingNorm.backward(embeddingDropout.backward(dx))
        try wordEmbedding.backward(dSummed)
        try positionEmbedding.backward(dSummed)
        try typeEmbedding.backward(dSummed)
    }
}
