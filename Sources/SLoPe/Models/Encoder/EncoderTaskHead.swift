/// A fine-tuning head over an ``EncoderModel``, as transformers builds them: classification or regression of the
/// pooled `[CLS]` (`BertForSequenceClassification`, tensor `classifier`), or extractive question answering — a start
/// and an end logit per token (`BertForQuestionAnswering`, tensor `qa_outputs`).
public final class EncoderTaskHead: Layer {
    public enum Task: Equatable, Sendable {
        /// Cross-entropy over `labels` classes (GLUE's classification tasks).
        case classification(labels: Int)
        /// One score, mean squared error (STS-B).
        case regression
        /// A start and an end position per sequence, the mean of their cross-entropies (SQuAD).
        case questionAnswering

        /// The head's outputs per sequence (classification, regression) or per token (question answering).
        public var outputs: Int {
            switch self {
            case .classification(let labels): return labels
            case .regression: return 1
            case .questionAnswering: return 2
            }
        }
    }

    public let task: Task
    public let encoder: EncoderModel
    public let linear: Linear
    let backend: any Backend
    private let crossEntropy: SoftmaxCrossEntropy
    /// What backward needs: the encoder's rows, and for regression the gradient of the loss by the scores.
    private var saved: (rows: Int, batch: Int, sequence: Int, regressionGradient: Tensor?)?

    public init(task: Task, encoder: EncoderModel, seed: UInt64) throws {
        guard task.outputs >= 1 else { throw TensorError.invalidArgument(operation: "EncoderTaskHead", reason: "a classifier needs at least one label") }
        self.task = task
        self.encoder = encoder
        backend = encoder.backend
        crossEntropy = SoftmaxCrossEntropy(backend: encoder.backend)
        var generator = SeededGenerator(seed: seed)
        let hidden = encoder.configuration.hiddenSize
        linear = try Linear(
            name: task == .questionAnswering ? "qa_outputs" : "classifier",
            weight: backend.randomNormal([task.outputs, hidden], std: 0.02, dtype: encoder.dtype, using: &generator),
            bias: backend.zeros([task.outputs], dtype: encoder.dtype), backend: backend)
    }

    public var parameters: [Parameter] { linear.parameters }

    /// Classification and regression: `[batch, outputs]` from the pooled `[CLS]`. Question answering: `[2·batch,
    /// sequence]`, each sequence's start logits in rows `0 ..< batch`, its end logits in rows `batch ..< 2·batch`.
    public func logits(tokens: Tensor, tokenTypes: Tensor, lengths: [Int]?, batch: Int, sequence: Int) throws -> Tensor {
        // Question answering reads every row, padding included (as transformers, whose loss takes all of them).
        let hidden = try encoder.encode(
            tokens: tokens, tokenTypes: tokenTypes, lengths: lengths, batch: batch, sequence: sequence, computingPadding: task == .questionAnswering)
        saved = (hidden.shape[0], batch, sequence, nil)
        guard task == .questionAnswering else { return try linear.forward(encoder.pooled(hidden, batch: batch, sequence: sequence)) }
        // [batch·sequence, 2] → [2, batch·sequence] → [2·batch, sequence].
        return try backend.transpose(linear.forward(hidden)).reshaped([2 * batch, sequence])
    }

    /// The task's loss over `labels`: a class per sequence (classification), a score per sequence (regression), or a
    /// start then an end position per sequence (question answering, `[s₀, e₀, s₁, e₁, …]`; −100 ignores one).
    public func loss(tokens: Tensor, tokenTypes: Tensor, lengths: [Int]?, batch: Int, sequence: Int, labels: [Float]) throws -> Double {
        let expected = task == .questionAnswering ? 2 * batch : batch
        guard labels.count == expected else {
            throw TensorError.invalidArgument(operation: "EncoderTaskHead", reason: "\(expected) labels for \(batch) sequences, not \(labels.count)")
        }
        let logits = try self.logits(tokens: tokens, tokenTypes: tokenTypes, lengths: lengths, batch: batch, sequence: sequence)
        switch task {
        case .classification(let classes):
            guard labels.allSatisfy({ $0 >= 0 && Int($0) < classes && $0 == $0.rounded() }) else {
                throw TensorError.invalidArgument(operation: "EncoderTaskHead", reason: "class labels must be 0 ..< \(classes)")
            }
            return try crossEntropy.forward(logits: logits, targets: backend.tensor(labels.map { Int32($0) }, shape: [batch]))
        case .regression:
            // Mean squared error, as transformers computes it for one label: mean((score − target)²).
            let scores = try backend.doubles(logits)
            let differences = zip(scores, labels).map { $0 - Double($1) }
            saved?.regressionGradient = try backend.tensor(differences.map { 2 * $0 / Double(batch) }, shape: [batch, 1], dtype: logits.dtype)
            return differences.map { $0 * $0 }.reduce(0, +) / Double(batch)
        case .questionAnswering:
            let positions = (0..<batch).map { labels[2 * $0] } + (0..<batch).map { labels[2 * $0 + 1] }
            guard positions.allSatisfy({ $0 == -100 || ($0 >= 0 && Int($0) < sequence) }) else {
                throw TensorError.invalidArgument(operation: "EncoderTaskHead", reason: "answer positions must be 0 ..< \(sequence) (or -100)")
            }
            return try crossEntropy.forward(logits: logits, targets: backend.tensor(positions.map { Int32($0) }, shape: [2 * batch]))
        }
    }

    /// Backpropagates `scale · loss` of the last ``loss(tokens:tokenTypes:lengths:batch:sequence:labels:)`` into the head's and
    /// the encoder's gradients.
    public func backward(scale: Float = 1) throws {
        guard let saved else { throw TensorError.invalidArgument(operation: "EncoderTaskHead.backward", reason: "call loss(...) first") }
        self.saved = nil
        switch task {
        case .classification, .regression:
            let dLogits = try saved.regressionGradient.map { try backend.scale($0, by: Double(scale)) } ?? crossEntropy.backward(scale: scale)
            try encoder.backward(hiddenGradient: encoder.poolerBackward(linear.backward(dLogits), rows: saved.rows))
        case .questionAnswering:
            let dLogits = try crossEntropy.backward(scale: scale).reshaped([2, saved.batch * saved.sequence])
            try encoder.backward(hiddenGradient: linear.backward(backend.transpose(dLogits)))
        }
    }
}
