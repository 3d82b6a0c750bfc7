import FoundationEssentials
import SlopeData

/// A training checkpoint: one safetensors file holding the model (sparse weights compressed with their
/// masks, adapters), both optimizers' moments, and — in its metadata — the run's state as JSON (model
/// configuration, options, step, data position, and whatever the caller adds, e.g. the tokenizer).
public enum Checkpoint {
    /// The JSON state stored under the `slope.state` metadata key.
    public struct State: Codable, Sendable {
        public static let currentVersion = 1
        public var version: Int
        public var model: ModelConfiguration
        public var dtype: DType
        public var options: TrainingOptions
        public var step: Int
        public var tokensSeen: Int
        public var loaderPosition: TokenLoader.Position
        public var adaptersAttached: Bool
        public var sparseOptimizerSteps: Int
        public var denseOptimizerSteps: Int
        /// Free-form facts from the caller (tokenizer, data source, …).
        public var notes: [String: String]
    }

    public enum Failure: Error, CustomStringConvertible {
        case notACheckpoint(path: String, reason: String)

        public var description: String {
            switch self {
            case let .notACheckpoint(path, reason): return "\(path) is not a slope checkpoint: \(reason)"
            }
        }
    }

    static let stateKey = "slope.state"
    static let adamPrefix = "optimizer.adamw."
    static let sparseAdamPrefix = "optimizer.sparse_adamw."

    /// The model's tensors as a checkpoint stores them (sparse weights compressed, with their masks).
    static func modelRecords(_ model: TransformerModel) throws -> [SafeTensors.Record] {
        try model.checkWritable("checkpoint")
        return try modelRecords(parameters: model.parameters, sparseWeights: model.sparseWeights, backend: model.backend)
    }

    static func modelRecords(parameters: [Parameter], sparseWeights: [SparseWeight], backend: any Backend) throws -> [SafeTensors.Record] {
        var records = try parameters.map { try SafeTensors.record($0.name, $0.value, backend: backend) }
        for weight in sparseWeights {
            for (suffix, tensor) in weight.stateTensors() {
                records.append(try SafeTensors.record("\(weight.name).\(suffix)", tensor, backend: backend))
            }
        }
        return records
    }

    static func write(_ records: [SafeTensors.Record], state: some Encodable, key: String = stateKey, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(state), as: UTF8.self)
        try SafeTensors.write(records, metadata: [key: json, "format": "pt"], to: path)
    }

    /// Loads a model's parameters and its SLoPe weights' compressed state (each checked against the layer's shape).
    static func loadTensors(_ file: SafeTensors.File, parameters: [Parameter], sparseWeights: [SparseWeight], backend: any Backend) throws {
        for parameter in parameters { try file.load(parameter.name, into: parameter.value, backend: backend) }
        for weight in sparseWeights {
            try weight.restoreState { suffix in
                let name = "\(weight.name).\(suffix)"
                let tensor = try file.tensor(name, backend: backend)
                let expected = weight.stateTensors().first { $0.suffix == suffix }!.tensor
                // Values stored in another floating type (a bf16 run read as float32) are converted; indices never are.
                let converts = tensor.dtype != expected.dtype && tensor.dtype.isFloatingPoint && expected.dtype.isFloatingPoint
                guard tensor.shape == expected.shape, tensor.dtype == expected.dtype || converts else {
                    throw SafeTensors.Failure.unexpectedTensor(
                        path: file.path, name: name, expected: "\(expected.shape) \(expected.dtype)", found: "\(tensor.shape) \(tensor.dtype)")
                }
                guard converts else { return tensor }
                let converted = try backend.zeros(expected.shape, dtype: expected.dtype)
                try backend.copy(tensor, into: converted)
                return converted
            }
        }
    }

    /// The optimizer moments `file` holds under `prefix` for the tensors `names` (those `owned` at this world size).
    static func moments(
        _ file: SafeTensors.File, prefix: String, names: [String], backend: any Backend, owned: (Int) -> Bool = { _ in true }
    ) throws -> [String: AdamMoments] {
        var result: [String: AdamMoments] = [:]
        for (index, name) in names.enumerated() where owned(index) && file.tensors[prefix + name + ".exp_avg"] != nil {
            result[name] = AdamMoments(
                first: try file.tensor(prefix + name + ".exp_avg", backend: backend),
                second: try file.tensor(prefix + name + ".exp_avg_sq", backend: backend))
        }
        return result
    }

    /// Writes a model that slope did not train (an imported one) as a checkpoint at step 0, atomically: `eval`,
    /// `generate`, `export` and `pretrain --init-from` read it like any other.
    public static func save(model: TransformerModel, notes: [String: String], to path: String) throws {
        guard model.sparseWeights.isEmpty else {
            throw TensorError.invalidArgument(operation: "Checkpoint.save(model:)", reason: "an untrained checkpoint holds a dense model")
        }
        try write(modelRecords(model), state: State.untrained(model, notes: notes), to: path)
    }

    /// Writes `trainer`'s full state to `path` atomically. With the optimizer state sharded (ZeRO-1) the moments are
    /// gathered from their owners first: every rank of the job must call this at the same point, and rank 0 alone
    /// writes (holding the other ranks' moments in host memory until the file is written); the other ranks return
    /// once they have sent theirs.
    public static func save(_ trainer: Trainer, notes: [String: String] = [:], to path: String) throws {
        let backend = trainer.backend
        trainer.shardOptimizerStateIfAsked()
        let sharded = trainer.sparseOptimizer.sharding != nil
        let writes = !sharded || trainer.communicator?.rank == 0
        var moments: [SafeTensors.Record] = []
        func collect(_ prefix: String) -> (String, AdamMoments) throws -> Void {
            { name, state in
                guard writes else { return }
                for (suffix, tensor) in [(".exp_avg", state.first), (".exp_avg_sq", state.second)] {
                    // Gathered moments live for this call only, so their bytes are read now.
                    let record = try SafeTensors.record(prefix + name + suffix, tensor, backend: backend)
                    moments.append(sharded ? try SafeTensors.copy(record) : record)
                }
            }
        }
        try trainer.denseOptimizer.forEachMoment(collect(adamPrefix))
        try trainer.sparseOptimizer.forEachMoment(collect(sparseAdamPrefix))
        guard writes else { return }
        var records = try modelRecords(trainer.model)
        records += moments.sorted { $0.name < $1.name }
        let state = State(
            version: State.currentVersion, model: trainer.model.configuration, dtype: trainer.model.dtype, options: trainer.options,
            step: trainer.step, tokensSeen: trainer.tokensSeen, loaderPosition: trainer.loader.position,
            adaptersAttached: trainer.adaptersAttached, sparseOptimizerSteps: trainer.sparseOptimizer.stepCount,
            denseOptimizerSteps: trainer.denseOptimizer.stepCount, notes: notes)
        try write(records, state: state, to: path)
    }

    /// About how many bytes ``save(_:notes:to:)`` writes for `trainer`: its tensors, and both optimizers' moments
    /// even before the first step has made them (two moments of every trained value, in the run's optimizer-state
    /// type; adapters, attached later, are left out). Known at start-up, so a run can warn that its checkpoint will
    /// not fit.
    public static func estimatedBytes(_ trainer: Trainer) -> Int {
        let model = trainer.model
        let tensors = model.parameters.map(\.value.byteCount).reduce(0, +)
            + model.sparseWeights.flatMap { $0.stateTensors().map(\.tensor.byteCount) }.reduce(0, +)
        let trained = model.parameters.map(\.value.count).reduce(0, +) + model.sparseWeights.map(\.values.count).reduce(0, +)
        return tensors + 2 * trained * trainer.options.momentDType.byteSize
    }

    /// Reads the state alone (for `eval`, `generate`, `export`, or to decide how to resume).
    public static func state(of file: SafeTensors.File) throws -> State {
        guard let json = file.metadata[stateKey] else {
            if file.metadata[EncoderCheckpoint.stateKey] != nil {
                throw Failure.notACheckpoint(
                    path: file.path, reason: "it holds a BERT-style encoder, which this command does not take; fine-tune it with "
                        + "slope finetune --init \(file.path), or write a transformers folder with slope export")
            }
            throw Failure.notACheckpoint(path: file.path, reason: "no \(stateKey) metadata (a plain safetensors file?)")
        }
        return try state(json: json, path: file.path)
    }

    /// The state from its JSON (`path` is for errors), with the saved model configuration and options checked.
    public static func state(json: String, path: String = "<memory>") throws -> State {
        do {
            let state = try JSONDecoder().decode(State.self, from: Data(json.utf8))
            guard state.version == State.currentVersion else {
                throw Failure.notACheckpoint(path: path, reason: "format version \(state.version), this slope reads \(State.currentVersion)")
            }
            do {
                try state.model.validate()
                try state.options.validate()
            } catch {
                throw Failure.notACheckpoint(path: path, reason: "its saved configuration is invalid (\(error))")
            }
            return state
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure.notACheckpoint(path: path, reason: "unreadable state (\(error))")
        }
    }

    /// Rebuilds the model of a checkpoint on `backend` (SLoPe layers, masks and adapters included). The saved
    /// configuration is checked against the tensors the file holds first, so a damaged or forged state cannot
    /// make it allocate a model the file does not contain.
    public static func loadModel(_ file: SafeTensors.File, backend: any Backend) throws -> (TransformerModel, State) {
        let state = try state(of: file)
        do { try state.model.validate() } catch {
            throw Failure.notACheckpoint(path: file.path, reason: "its saved model configuration is invalid (\(error))")
        }
        // Sparse weights are stored compressed (half the values and their slot indices), so a file holds at least
        // about half of the model's dense bytes; far less means the state and the tensors do not belong together.
        let expected = state.model.checkedParameterCount.flatMap { CheckedSize.product([$0, state.dtype.byteSize]) }
        let held = SafeTensors.tensorBytes(file)
        guard let expected, held >= expected / 4 else {
            throw Failure.notACheckpoint(
                path: file.path, reason: "its state describes a model of \(state.model.parameterCount) \(state.dtype) parameters "
                    + "(\(expected.map(byteCountText) ?? "too many bytes to count")) but the file holds \(byteCountText(held)) of tensors")
        }
        let model = try TransformerModel(configuration: state.model, dtype: state.dtype, backend: backend, seed: state.options.seed)
        if let plan = state.options.sparsity { try model.convertToSLoPe(plan) }
        if state.adaptersAttached { _ = try model.attachAdapters(rank: state.options.adapterRank, seed: state.options.adapterSeed) }
        try loadTensors(file, parameters: model.parameters, sparseWeights: model.sparseWeights, backend: backend)
        return (model, state)
    }

    /// A trainer that continues the checkpointed run exactly, over the same token streams. `adjusting` may change
    /// the saved options that a continued run can change (``TrainingOptions/steps``, to extend or shorten it; the
    /// learning-rate schedule then follows the new length); the step reached must stay below the new total.
    /// In a data-parallel job pass its `communicator`; with `shardingOptimizerState` each rank loads only the moments
    /// it owns at this world size (ZeRO-1), whatever the world size that saved them.
    public static func resume(
        _ file: SafeTensors.File, backend: any Backend, trainTokens: [Int32], validationTokens: [Int32],
        communicator: (any Communicator)? = nil, shardingOptimizerState: Bool = false,
        adjusting adjust: (inout TrainingOptions) -> Void = { _ in }
    ) throws -> Trainer {
        let (model, state) = try loadModel(file, backend: backend)
        var options = state.options
        adjust(&options)
        guard options.steps > state.step || options.steps == state.options.steps else {
            throw TensorError.invalidArgument(
                operation: "resume", reason: "the run is at step \(state.step), so it cannot end at step \(options.steps); give more steps")
        }
        let trainer = try Trainer(model: model, options: options, trainTokens: trainTokens, validationTokens: validationTokens)
        trainer.communicator = communicator
        trainer.shardsOptimizerState = shardingOptimizerState
        trainer.shardOptimizerStateIfAsked()
        func moments(_ prefix: String, _ names: [String], owned: (Int) -> Bool) throws -> [String: AdamMoments] {
            try Checkpoint.moments(file, prefix: prefix, names: names, backend: backend, owned: owned)
        }
        try trainer.restore(
            step: state.step, tokensSeen: state.tokensSeen, loaderPosition: state.loaderPosition, adaptersAttached: state.adaptersAttached,
            sparseSteps: state.sparseOptimizerSteps, sparseMoments: moments(sparseAdamPrefix, model.sparseWeights.map(\.name), owned: trainer.sparseOptimizer.owns),
            denseSteps: state.denseOptimizerSteps, denseMoments: moments(adamPrefix, model.parameters.map(\.name), owned: trainer.denseOptimizer.owns))
        return trainer
    }
}

extension Checkpoint.State {
    /// The state of a model slope has not trained (imported): step 0, its own sparsity (none for an import), and
    /// options only for their evaluation defaults (batch 8 of up to 1024 tokens).
    public static func untrained(_ model: TransformerModel, notes: [String: String]) -> Self {
        let options = TrainingOptions(
            steps: 1, batchSize: 8, sequenceLength: min(1024, model.configuration.contextLength), sparsity: nil, adapterFraction: 0)
        return Self(
            version: currentVersion, model: model.configuration, dtype: model.dtype, options: options, step: 0, tokensSeen: 0,
            loaderPosition: .init(epoch: 0, window: 0), adaptersAttached: false, sparseOptimizerSteps: 0, denseOptimizerSteps: 0,
            notes: notes)
    }
}

extension Trainer {
    func restore(
        step: Int, tokensSeen: Int, loaderPosition: TokenLoader.Position, adaptersAttached: Bool,
        sparseSteps: Int, sparseMoments: [String: AdamMoments], denseSteps: Int, denseMoments: [String: AdamMoments]
    ) throws {
        self.step = step
        self.tokensSeen = tokensSeen
        self.adaptersAttached = adaptersAttached
        loader.restore(loaderPosition)
        try sparseOptimizer.restore(stepCount: sparseSteps, moments: sparseMoments)
        denseOptimizer.restore(stepCount: denseSteps, moments: denseMoments)
    }
}
