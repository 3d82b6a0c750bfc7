import FoundationEssentials
import SlopeData

/// A BERT pretraining checkpoint: one safetensors file as ``Checkpoint`` writes it (the encoder's tensors, SLoPe
/// weights compressed with their masks, adapters, both optimizers' moments), its run state under its own metadata
/// key so that decoder commands refuse it by name instead of misreading it.
public enum EncoderCheckpoint {
    /// The JSON state stored under the `slope.encoder_state` metadata key.
    public struct State: Codable, Sendable {
        public static let currentVersion = 1
        public var version: Int
        public var model: EncoderConfiguration
        public var dtype: DType
        public var options: TrainingOptions
        public var nextSentencePrediction: Bool
        public var masking: MaskedLanguageModelingBatches.Masking
        public var maxPredictions: Int
        public var step: Int
        public var tokensSeen: Int
        public var batchPosition: MaskedLanguageModelingBatches.Position
        public var adaptersAttached: Bool
        public var sparseOptimizerSteps: Int
        public var denseOptimizerSteps: Int
        /// Free-form facts from the caller (tokenizer, data source, …).
        public var notes: [String: String]
    }

    static let stateKey = "slope.encoder_state"

    /// Whether `file` is an encoder checkpoint.
    public static func holdsEncoder(_ file: SafeTensors.File) -> Bool { file.metadata[stateKey] != nil }

    /// Writes `trainer`'s full state to `path` atomically.
    public static func save(_ trainer: EncoderTrainer, notes: [String: String] = [:], to path: String) throws {
        let backend = trainer.backend
        var records = try Checkpoint.modelRecords(
            parameters: trainer.model.parameters, sparseWeights: trainer.model.sparseWeights, backend: backend)
        var moments: [SafeTensors.Record] = []
        func collect(_ prefix: String) -> (String, AdamMoments) throws -> Void {
            { name, state in
                moments.append(try SafeTensors.record(prefix + name + ".exp_avg", state.first, backend: backend))
                moments.append(try SafeTensors.record(prefix + name + ".exp_avg_sq", state.second, backend: backend))
            }
        }
        try trainer.update.denseOptimizer.forEachMoment(collect(Checkpoint.adamPrefix))
        try trainer.update.sparseOptimizer.forEachMoment(collect(Checkpoint.sparseAdamPrefix))
        records += moments.sorted { $0.name < $1.name }
        let state = State(
            version: State.currentVersion, model: trainer.model.configuration, dtype: trainer.model.dtype, options: trainer.options,
            nextSentencePrediction: trainer.nextSentencePrediction, masking: trainer.batches.mode,
            maxPredictions: trainer.batches.masking.maxPredictions, step: trainer.step, tokensSeen: trainer.tokensSeen,
            batchPosition: trainer.batches.position, adaptersAttached: trainer.adaptersAttached,
            sparseOptimizerSteps: trainer.update.sparseOptimizer.stepCount, denseOptimizerSteps: trainer.update.denseOptimizer.stepCount,
            notes: notes)
        try Checkpoint.write(records, state: state, key: stateKey, to: path)
    }

    /// The state alone, checked.
    public static func state(of file: SafeTensors.File) throws -> State {
        guard let json = file.metadata[stateKey] else {
            throw Checkpoint.Failure.notACheckpoint(
                path: file.path, reason: file.metadata[Checkpoint.stateKey] != nil
                    ? "it holds a decoder (a slope pretrain run of a GPT/OPT/LLaMA shape), not a BERT-style encoder"
                    : "no \(stateKey) metadata (a plain safetensors file?)")
        }
        do {
            let state = try JSONDecoder().decode(State.self, from: Data(json.utf8))
            guard state.version == State.currentVersion else {
                throw Checkpoint.Failure.notACheckpoint(path: file.path, reason: "encoder format version \(state.version), this slope reads \(State.currentVersion)")
            }
            do {
                try state.model.validate()
                try state.options.validate()
            } catch {
                throw Checkpoint.Failure.notACheckpoint(path: file.path, reason: "its saved configuration is invalid (\(error))")
            }
            return state
        } catch let error as Checkpoint.Failure {
            throw error
        } catch {
            throw Checkpoint.Failure.notACheckpoint(path: file.path, reason: "unreadable encoder state (\(error))")
        }
    }

    /// Rebuilds the encoder of a checkpoint on `backend` (SLoPe layers, masks and adapters included), in `dtype`
    /// (default: as trained), after checking that the file holds about as many bytes as the saved configuration says.
    public static func loadModel(_ file: SafeTensors.File, backend: any Backend, dtype: DType? = nil) throws -> (EncoderModel, State) {
        let state = try state(of: file)
        let expected = state.model.checkedParameterCount.flatMap { CheckedSize.product([$0, state.dtype.byteSize]) }
        let held = SafeTensors.tensorBytes(file)
        guard let expected, held >= expected / 4 else {
            throw Checkpoint.Failure.notACheckpoint(
                path: file.path, reason: "its state describes an encoder of \(expected.map(byteCountText) ?? "too many bytes to count") "
                    + "but the file holds \(byteCountText(held)) of tensors")
        }
        let model = try EncoderModel(configuration: state.model, dtype: dtype ?? state.dtype, backend: backend, seed: state.options.seed)
        if let plan = state.options.sparsity { try model.convertToSLoPe(plan) }
        if state.adaptersAttached { _ = try model.attachAdapters(rank: state.options.adapterRank, seed: state.options.adapterSeed) }
        try Checkpoint.loadTensors(file, parameters: model.parameters, sparseWeights: model.sparseWeights, backend: backend)
        return (model, state)
    }

    /// A trainer that continues the checkpointed run exactly over `train` and `validation` (the same sentence pairs
    /// the run was started with). `adjusting` may change the number of steps (the schedule then follows it).
    public static func resume(
        _ file: SafeTensors.File, backend: any Backend, train: MaskedLanguageModelingBatches, validation: MaskedLanguageModelingBatches,
        adjusting adjust: (inout TrainingOptions) -> Void = { _ in }
    ) throws -> EncoderTrainer {
        let (model, state) = try loadModel(file, backend: backend)
        var options = state.options
        adjust(&options)
        guard options.steps > state.step || options.steps == state.options.steps else {
            throw TensorError.invalidArgument(
                operation: "resume", reason: "the run is at step \(state.step), so it cannot end at step \(options.steps); give more steps")
        }
        let trainer = try EncoderTrainer(
            model: model, options: options, train: train, validation: validation, nextSentencePrediction: state.nextSentencePrediction)
        trainer.step = state.step
        trainer.tokensSeen = state.tokensSeen
        trainer.adaptersAttached = state.adaptersAttached
        trainer.batches.restore(state.batchPosition)
        try trainer.update.sparseOptimizer.restore(
            stepCount: state.sparseOptimizerSteps,
            moments: Checkpoint.moments(file, prefix: Checkpoint.sparseAdamPrefix, names: model.sparseWeights.map(\.name), backend: backend))
        trainer.update.denseOptimizer.restore(
            stepCount: state.denseOptimizerSteps,
            moments: try Checkpoint.moments(file, prefix: Checkpoint.adamPrefix, names: model.parameters.map(\.name), backend: backend))
        return trainer
    }
}
