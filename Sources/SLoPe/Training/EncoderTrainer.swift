import SlopeData

/// Runs BERT pretraining of an ``EncoderModel``, dense or SLoPe: masked-language-model batches (and next-sentence
/// prediction, when on) with gradient accumulation, then the update ``Trainer`` makes (clipping, SparseAdamW or
/// sparse LAMB for SLoPe weights, AdamW or LAMB for the rest, the schedule), lazy adapters for the last steps, and
/// validation on fixed batches. Its whole state can be checkpointed and resumed exactly (``EncoderCheckpoint``).
public final class EncoderTrainer {
    public let model: EncoderModel
    public let options: TrainingOptions
    /// Whether the next-sentence loss is trained beside the masked-LM loss (BERT: yes; RoBERTa: no).
    public let nextSentencePrediction: Bool
    public let backend: any Backend
    public internal(set) var step = 0
    /// Real (not padding) tokens of the sequences trained on.
    public internal(set) var tokensSeen = 0
    public internal(set) var adaptersAttached = false
    public private(set) var sparsityReport: SparsityReport?
    var batches: MaskedLanguageModelingBatches
    let validation: MaskedLanguageModelingBatches
    let update: ParameterUpdate

    /// What one optimizer step did (losses are means over the step's micro-batches).
    public struct StepResult: Sendable {
        public let step: Int
        /// Masked-LM loss plus the next-sentence loss when trained.
        public let loss: Double
        public let maskedLanguageModelLoss: Double
        public let nextSentenceLoss: Double?
        public let learningRate: Float
        public let gradientNorm: Double
        public let tokens: Int
        public let startedAdapters: Bool
    }

    /// Validation losses over the fixed validation batches.
    public struct Validation: Sendable {
        public let maskedLanguageModelLoss: Double
        public let nextSentenceLoss: Double?
        public var loss: Double { maskedLanguageModelLoss + (nextSentenceLoss ?? 0) }
    }

    /// A fresh run: converts `model` to SLoPe when the options ask for it. `train` gives the batches (its batch size
    /// is the options'); `validation` is masked statically, its first `options.evaluationBatches` batches used.
    public init(
        model: EncoderModel, options: TrainingOptions, train: MaskedLanguageModelingBatches, validation: MaskedLanguageModelingBatches,
        nextSentencePrediction: Bool = true
    ) throws {
        try options.validate()
        guard train.batchSize == options.batchSize, validation.batchSize == options.batchSize else {
            throw TensorError.invalidArgument(operation: "EncoderTrainer", reason: "the batches' size differs from the options' batch size")
        }
        guard train.masking.sequenceLength <= model.configuration.contextLength else {
            throw TensorError.invalidArgument(
                operation: "EncoderTrainer",
                reason: "sequence length \(train.masking.sequenceLength) exceeds the model's \(model.configuration.contextLength) positions")
        }
        guard train.masking.vocabularySize <= model.configuration.vocabularySize else {
            throw TensorError.invalidArgument(
                operation: "EncoderTrainer",
                reason: "the data's vocabulary (\(train.masking.vocabularySize)) is larger than the model's (\(model.configuration.vocabularySize))")
        }
        if options.adapterFraction > 0, options.adapterRank > model.configuration.hiddenSize {
            throw TensorError.invalidArgument(
                operation: "training options", reason: "adapter rank \(options.adapterRank) exceeds the hidden size \(model.configuration.hiddenSize)")
        }
        try Self.requireMemory(model: model, options: options, predictions: train.masking.maxPredictions)
        self.model = model
        self.options = options
        self.nextSentencePrediction = nextSentencePrediction
        backend = model.backend
        batches = train
        self.validation = validation
        if let plan = options.sparsity, model.sparseWeights.isEmpty { sparsityReport = try model.convertToSLoPe(plan) }
        update = try ParameterUpdate(parameters: model.parameters, sparseWeights: model.sparseWeights, options: options, backend: backend)
    }

    /// Refuses a run that could never fit the device: a weight, a gradient and two moments per parameter, and one
    /// micro-batch's prediction logits.
    static func requireMemory(model: EncoderModel, options: TrainingOptions, predictions: Int) throws {
        let c = model.configuration
        try TrainingMemory.require(
            parameters: c.checkedParameterCount, dtype: model.dtype, options: options, logitRows: [options.batchSize, predictions],
            classes: c.vocabularySize,
            for: "training this encoder (weights, gradients and optimizer moments, and the logits of \(options.batchSize) × "
                + "\(predictions) predictions over \(c.vocabularySize) tokens)", on: model.backend)
    }

    /// The first step trained with adapters (past `options.steps` when there are none).
    public var adapterStartStep: Int { options.steps - options.adapterSteps + 1 }

    /// Where the training batches stand (what a checkpoint records).
    public var batchPosition: MaskedLanguageModelingBatches.Position { batches.position }

    /// One optimizer step over `gradientAccumulation` micro-batches.
    public func trainStep() throws -> StepResult {
        let number = step + 1
        var startedAdapters = false
        if !adaptersAttached, number >= adapterStartStep, options.adapterSteps > 0 {
            update.denseOptimizer.append(try model.attachAdapters(rank: options.adapterRank, seed: options.adapterSeed))
            adaptersAttached = true
            startedAdapters = true
        }
        var (maskedLM, nextSentence, tokens) = (0.0, 0.0, 0)
        let scale = 1 / Float(options.gradientAccumulation)
        for micro in 0..<options.gradientAccumulation {
            let batch = batches.next()
            // Dropout masks from the run's seed, the step and the micro-batch: a resumed run draws the same ones.
            model.dropoutSeed = DropoutMask.layerSeed(options.seed &+ 0xD80F, layer: (number - 1) * options.gradientAccumulation + micro)
            let losses = try self.losses(batch)
            guard (losses.maskedLM + (losses.nextSentence ?? 0)).isFinite else {
                try update.zeroGradients()
                throw Trainer.Failure.nonFinite(step: number, what: "loss (masked LM \(losses.maskedLM), next sentence \(losses.nextSentence ?? 0))")
            }
            try model.backward(scale: scale)
            maskedLM += losses.maskedLM / Double(options.gradientAccumulation)
            nextSentence += (losses.nextSentence ?? 0) / Double(options.gradientAccumulation)
            tokens += batch.lengths.reduce(0, +)
        }
        let (norm, rate) = try update.apply(step: number, parameters: model.parameters, sparseWeights: model.sparseWeights)
        step = number
        tokensSeen += tokens
        return StepResult(
            step: number, loss: maskedLM + nextSentence, maskedLanguageModelLoss: maskedLM,
            nextSentenceLoss: nextSentencePrediction ? nextSentence : nil, learningRate: rate, gradientNorm: norm, tokens: tokens,
            startedAdapters: startedAdapters)
    }

    /// The forward pass of one batch: its masked-LM loss, and the next-sentence loss when trained.
    func losses(_ batch: MaskedLanguageModelingBatches.Batch) throws -> (maskedLM: Double, nextSentence: Double?) {
        let tokens = try backend.tensor(batch.inputIDs, shape: [batch.inputIDs.count])
        let types = try backend.tensor(batch.tokenTypes, shape: [batch.tokenTypes.count])
        // A batch without padding needs no key lengths (and keeps the fused attention kernels).
        let lengths = batch.lengths.allSatisfy { $0 == batch.sequenceLength } ? nil : batch.lengths
        if nextSentencePrediction {
            let losses = try model.pretrainingLosses(
                tokens: tokens, tokenTypes: types, labels: batch.labels, nextSentenceLabels: batch.nextSentenceLabels, lengths: lengths,
                batch: batch.count, sequence: batch.sequenceLength)
            return (losses.maskedLM, losses.nextSentence)
        }
        let loss = try model.maskedLanguageModelLoss(
            tokens: tokens, tokenTypes: types, labels: batch.labels, lengths: lengths, batch: batch.count, sequence: batch.sequenceLength)
        return (loss, nil)
    }

    /// Mean losses over the first `options.evaluationBatches` validation batches (always the same ones and masks).
    public func validationLosses() throws -> Validation {
        model.dropoutSeed = nil
        let count = max(1, min(options.evaluationBatches, validation.batchesPerEpoch))
        var (maskedLM, nextSentence) = (0.0, 0.0)
        for index in 0..<count {
            let start = index * validation.batchSize
            let losses = try self.losses(validation.batch(start..<(start + validation.batchSize), epoch: 0))
            maskedLM += losses.maskedLM / Double(count)
            nextSentence += (losses.nextSentence ?? 0) / Double(count)
        }
        return Validation(maskedLanguageModelLoss: maskedLM, nextSentenceLoss: nextSentencePrediction ? nextSentence : nil)
    }

    /// Bytes held by the optimizers' moments.
    public var optimizerStateBytes: Int { update.stateBytes }
}
