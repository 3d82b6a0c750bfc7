import SlopeData

/// Runs SLoPe (or dense) pretraining of a ``TransformerModel``: micro-batches with gradient accumulation,
/// global clipping, SparseAdamW for SLoPe weights and AdamW for the rest, the LR schedule, lazy adapters
/// for the last steps, and validation. Its whole state can be checkpointed and resumed exactly.
public final class Trainer {
    public let model: TransformerModel
    public let options: TrainingOptions
    public let backend: any Backend
    /// Optimizer steps done.
    public internal(set) var step = 0
    public internal(set) var tokensSeen = 0
    public internal(set) var adaptersAttached = false
    public private(set) var sparsityReport: SparsityReport?
    /// Data parallelism: this process's part of each global batch, and gradients averaged over the ranks before
    /// the step (nil: one process). `batchSize` is then per rank; every rank must run the same model and options.
    public var communicator: (any Communicator)?
    /// Bytes per bucket of gradients averaged during backward, where the communicator overlaps (25 MiB, as DDP).
    public var allReduceBucketBytes = GradientBuckets.defaultCapacity
    /// ZeRO-1 (with a communicator): each rank keeps the optimizer moments of about 1/N of the tensors, whole
    /// tensors balanced by size, and updates only those; the owners then broadcast the new values (as PyTorch's
    /// ZeroRedundancyOptimizer does after DDP's all-reduce). The steps are those of the unsharded run bit for bit;
    /// checkpoints gather the moments, so they resume at any world size, sharded or not. Set before the first step.
    public var shardsOptimizerState = false
    var loader: TokenLoader
    let validationTokens: [Int32]
    let update: ParameterUpdate
    var sparseOptimizer: SparseAdamW { update.sparseOptimizer }
    var denseOptimizer: AdamW { update.denseOptimizer }

    /// What one optimizer step did.
    public struct StepResult: Sendable {
        public let step: Int
        /// Mean loss over the step's micro-batches.
        public let loss: Double
        public let learningRate: Float
        /// Global gradient norm before clipping.
        public let gradientNorm: Double
        public let tokens: Int
        /// This step attached the lazy adapters.
        public let startedAdapters: Bool
    }

    public enum Failure: Error, CustomStringConvertible {
        case nonFinite(step: Int, what: String)
        case notEnoughValidation(tokens: Int, needed: Int)

        public var description: String {
            switch self {
            case let .nonFinite(step, what):
                return "step \(step): the \(what) is not finite, so the weights were not updated with it; the model is as "
                    + "step \(step - 1) left it. Lower the learning rate, enable clipping (--clip 1) or use float32"
            case let .notEnoughValidation(tokens, needed):
                return "the validation split has \(tokens) tokens but one batch needs \(needed); use more data or a larger --validation-fraction"
            }
        }
    }

    /// A fresh run: converts `model` to SLoPe when the options ask for it.
    public init(model: TransformerModel, options: TrainingOptions, trainTokens: [Int32], validationTokens: [Int32]) throws {
        try options.validate()
        try Self.requireMemory(model: model, options: options)
        self.model = model
        self.options = options
        backend = model.backend
        loader = try TokenLoader(
            tokens: trainTokens, batchSize: options.batchSize, sequenceLength: options.sequenceLength, seed: options.seed,
            sampling: options.sampling ?? .windows)
        let needed = options.batchSize * (options.sequenceLength + 1)
        guard validationTokens.count >= needed else { throw Failure.notEnoughValidation(tokens: validationTokens.count, needed: needed) }
        self.validationTokens = validationTokens
        if options.adapterFraction > 0, options.adapterRank > model.configuration.hiddenSize {
            throw TensorError.invalidArgument(
                operation: "training options", reason: "adapter rank \(options.adapterRank) exceeds the hidden size \(model.configuration.hiddenSize) "
                    + "(the paper's ranks are 0.39–6.25% of it; each layer's adapter is at most as wide as the layer)")
        }
        if let plan = options.sparsity, model.sparseWeights.isEmpty { sparsityReport = try model.convertToSLoPe(plan) }
        update = try ParameterUpdate(parameters: model.parameters, sparseWeights: model.sparseWeights, options: options, backend: backend)
    }

    /// Refuses a run that could never fit the device, before its first step: at least a weight, a gradient and
    /// two moments per parameter, and one micro-batch's logits.
    static func requireMemory(model: TransformerModel, options: TrainingOptions) throws {
        let c = model.configuration
        try TrainingMemory.require(
            parameters: c.checkedParameterCount, dtype: model.dtype, options: options, logitRows: [options.batchSize, options.sequenceLength],
            classes: c.vocabularySize,
            for: "training this model (weights, gradients and optimizer moments, and the logits of \(options.batchSize) × "
                + "\(options.sequenceLength) tokens over \(c.vocabularySize) classes)", on: model.backend)
    }

    /// The first step trained with adapters (past `options.steps` when there are none).
    public var adapterStartStep: Int { options.steps - options.adapterSteps + 1 }

    /// One optimizer step over `gradientAccumulation` micro-batches.
    public func trainStep() throws -> StepResult {
        shardOptimizerStateIfAsked()
        let number = step + 1
        var startedAdapters = false
        if !adaptersAttached, number >= adapterStartStep, options.adapterSteps > 0 {
            denseOptimizer.append(try model.attachAdapters(rank: options.adapterRank, seed: options.adapterSeed))
            adaptersAttached = true
            startedAdapters = true
        }
        var loss = 0.0
        let scale = 1 / Float(options.gradientAccumulation)
        // A communicator that overlaps gets the last micro-batch's gradients bucket by bucket during its backward.
        let buckets = communicator.flatMap { $0.overlapsBackward ? GradientBuckets($0, capacity: allReduceBucketBytes) : nil }
        for micro in 0..<options.gradientAccumulation {
            let value = try model.loss(
                on: loader.next(part: communicator?.rank ?? 0, of: communicator?.worldSize ?? 1), batch: options.batchSize,
                sequence: options.sequenceLength)
            // Ranks look at the averaged loss instead (below), so all stop at the same step.
            guard value.isFinite || communicator != nil else {
                try zeroGradients()
                throw Failure.nonFinite(step: number, what: "loss (\(value))")
            }
            let last = micro == options.gradientAccumulation - 1
            try model.backward(scale: scale, gradientsReady: last ? buckets.map { buckets in { try buckets.add($0) } } : nil)
            loss += value / Double(options.gradientAccumulation)
        }
        if let communicator {
            // The mean of the ranks' mean gradients is the gradient of the global batch (every rank has as many tokens).
            if let buckets {
                try buckets.flush()
                try communicator.finishAveraging()
            } else {
                try communicator.averageInPlace(model.parameters.compactMap(\.gradient) + model.sparseWeights.compactMap(\.gradient))
            }
            loss = try communicator.average([loss])[0]
            guard loss.isFinite else {
                try zeroGradients()
                throw Failure.nonFinite(step: number, what: "loss (\(loss), the mean over the ranks)")
            }
        }
        let (norm, rate) = try update.apply(step: number, parameters: model.parameters, sparseWeights: model.sparseWeights)
        step = number
        let tokens = options.tokensPerStep * (communicator?.worldSize ?? 1)
        tokensSeen += tokens
        return StepResult(step: number, loss: loss, learningRate: rate, gradientNorm: norm, tokens: tokens, startedAdapters: startedAdapters)
    }

    /// Gives the optimizers their owners once sharding is asked for and a communicator is set.
    func shardOptimizerStateIfAsked() {
        guard shardsOptimizerState, let communicator, sparseOptimizer.sharding == nil else { return }
        let sparseSizes = sparseOptimizer.weights.map(\.values.count)
        let owners = OptimizerShards.owners(
            sizes: sparseSizes + denseOptimizer.parameters.map(\.value.count), worldSize: communicator.worldSize)
        sparseOptimizer.shard(OptimizerSharding(communicator: communicator, owners: Array(owners[..<sparseSizes.count])))
        denseOptimizer.shard(OptimizerSharding(communicator: communicator, owners: Array(owners[sparseSizes.count...])))
    }

    /// Elements this rank keeps moments for, of all the trained elements (the same two numbers unsharded).
    public var optimizerStateShare: (kept: Int, total: Int) {
        shardOptimizerStateIfAsked()
        let sparse = sparseOptimizer.weights.enumerated().map { ($1.values.count, sparseOptimizer.owns($0)) }
        let dense = denseOptimizer.parameters.enumerated().map { ($1.value.count, denseOptimizer.owns($0)) }
        return ((sparse + dense).filter(\.1).map(\.0).reduce(0, +), (sparse + dense).map(\.0).reduce(0, +))
    }

    func zeroGradients() throws { try update.zeroGradients() }

    /// Mean loss over the first `evaluationBatches` batches of the validation split (always the same ones).
    public func validationLoss() throws -> Double {
        try Self.meanLoss(
            of: model, tokens: validationTokens, batchSize: options.batchSize, sequenceLength: options.sequenceLength,
            batches: options.evaluationBatches)
    }

    /// Mean next-token loss of `model` over up to `batches` batches of `tokens`, in order, without training.
    public static func meanLoss(of model: TransformerModel, tokens: [Int32], batchSize: Int, sequenceLength: Int, batches: Int) throws -> Double {
        var loader = try TokenLoader(tokens: tokens, batchSize: batchSize, sequenceLength: sequenceLength, seed: 0)
        let count = max(1, min(batches, loader.windowsPerEpoch / batchSize))
        var total = 0.0
        for _ in 0..<count {
            total += try model.loss(on: loader.next(), batch: batchSize, sequence: sequenceLength)
        }
        return total / Double(count)
    }

    /// Bytes held by the optimizers' moments (on this rank).
    public var optimizerStateBytes: Int { update.stateBytes }
}

extension TransformerModel {
    /// The loss of one loader batch (token ids uploaded to this model's backend).
    func loss(on batch: (inputs: [Int32], targets: [Int32]), batch size: Int, sequence: Int) throws -> Double {
        try loss(
            tokens: backend.tensor(batch.inputs, shape: [batch.inputs.count]), targets: backend.tensor(batch.targets, shape: [batch.targets.count]),
            batch: size, sequence: sequence)
    }
}
