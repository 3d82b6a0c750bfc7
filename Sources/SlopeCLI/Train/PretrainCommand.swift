import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeCUDA
import SlopeData

/// `slope pretrain`: trains a dense or SLoPe transformer from scratch (or resumes a run).
struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pretrain a SLoPe (2:4-sparse) or dense transformer; with no arguments, a tiny model on the embedded corpus.",
        discussion: """
            The run folder (--out) gets checkpoint.safetensors (written atomically every --checkpoint-every steps, at the \
            end, on Ctrl-C / SIGTERM and when the loss stops being finite), metrics.jsonl and loss.svg. \
            --resume continues a stopped run exactly, with the options and data it was started with. \
            Models: \(ModelConfiguration.names.joined(separator: ", ")), or a JSON file of ModelConfiguration.
            """
    )

    @Option(help: "Model name or JSON configuration file.")
    var model = "tiny"

    @Option(help: "Start from these weights instead of random ones: a Hugging Face model folder (GPT-2, OPT or LLaMA family) or a dense slope checkpoint. Its shape replaces --model; with SLoPe its linears are pruned to N:M by magnitude and trained on sparse (sparse continued pretraining). Its own tokenizer is used unless --tokenizer names another.")
    var initFrom: String?

    @Flag(help: "Train the dense model instead of SLoPe.")
    var dense = false

    @Option(help: "N:M pattern of the SLoPe layers.")
    var pattern = "2:4"

    @Option(parsing: .unconditional, help: "Give the first K blocks --leading-pattern instead (e.g. 2:8).")
    var leadingBlocks = 0

    @Option(help: "Pattern of the first --leading-blocks blocks.")
    var leadingPattern: String?

    @Flag(help: "Keep the first block dense.")
    var skipFirstBlock = false

    @Flag(help: "Keep the last block dense.")
    var skipLastBlock = false

    @Flag(help: "Keep attention projections dense.")
    var skipAttention = false

    @Flag(help: "Simulate sparsity with dense tensors and masks (same numbers, for debugging).")
    var simulate = false

    @Option(help: "The dimension N:M groups run along: reduction (din: what sparse tensor cores run) or output (dout: the original's --reduction_dim False; with --simulate only).")
    var pruneAlong: PruneDimension = .reduction

    @Option(parsing: .unconditional, help: "Mask by magnitude over the whole tensor instead of N:M, removing this fraction (the original's --unstructured_masking; with --simulate only).")
    var unstructuredSparsity: Double?

    @Option(parsing: .unconditional, help: "Optimizer steps (default 600 for the tiny models, else 1000).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Train for this many tokens instead of --steps.")
    var tokens: Int?

    @Option(parsing: .unconditional, help: "Sequences per micro-batch.")
    var batchSize = 8

    @Option(parsing: .unconditional, help: "Tokens per sequence (≤ the model's context length).")
    var sequenceLength = 128

    @Option(parsing: .unconditional, help: "Micro-batches per optimizer step.")
    var gradientAccumulation = 1

    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Peak learning rate.")
    var learningRate: Float = 2e-3

    @Option(name: .customLong("min-lr"), parsing: .unconditional, help: "Final learning rate (default: lr/10).")
    var minimumLearningRate: Float?

    @Option(parsing: .unconditional, help: "Linear warm-up steps (default: 5% of the steps).")
    var warmup: Int?

    @Option(help: "Decay after warm-up: constant, linear, cosine, or polynomial (NVIDIA's BERT recipe: (1 − step/steps)^0.5).")
    var decay: String = "cosine"

    @Option(parsing: .unconditional, help: "AdamW weight decay.")
    var weightDecay: Float = 0.1

    @Option(help: "Which tensors weight decay applies to: all, or matrices (weights and embeddings, not biases or norm gains: GPT-2's and nanoGPT's recipe).")
    var weightDecayOn: WeightDecayScope = .all

    @Option(parsing: .unconditional, help: "AdamW β1.")
    var beta1: Float = 0.9

    @Option(parsing: .unconditional, help: "AdamW β2 (nanoGPT uses 0.99 for small models, 0.95 for GPT-2 sizes).")
    var beta2: Float = 0.95

    @Option(name: .customLong("eps"), parsing: .unconditional, help: "AdamW ε.")
    var epsilon: Float = 1e-8

    @Option(help: "How training sequences are cut from the data: random (a random offset for every sequence, nanoGPT's way; resumable) or windows (fixed windows, each once per epoch, shuffled; they overfit sooner when the data is seen many times).")
    var sampling: TokenLoader.Sampling = .random

    @Option(help: "How bfloat16 weights store their updates: stochastic (rounded up or down at random, so updates below bf16's resolution still count on average; no float32 copy of the weights) or nearest. float32 weights are unaffected.")
    var bf16Rounding: WeightRounding = .stochastic

    @Option(help: "The update: adamw, or lamb (AdamW's update scaled per tensor by ‖w‖/‖update‖ where weight decay applies, as NVIDIA's BERT recipe trains; SLoPe weights take the ratio over their kept values).")
    var optimizer: UpdateRule = .adamw

    @Option(help: "Element type of the AdamW moments: float32, or bfloat16 for half the optimizer's memory (as PyTorch keeps them for a bf16 model).")
    var optimizerState: DType = .float32

    @Option(parsing: .unconditional, help: "Global gradient-norm clip (0: off).")
    var clip = 1.0

    @Option(parsing: .unconditional, help: "Fraction of the steps, at the end, trained with lazy low-rank adapters (0: none).")
    var adapterFraction = 0.01

    @Option(parsing: .unconditional, help: "Adapter rank.")
    var adapterRank = 16

    @Option(parsing: .unconditional, help: "Steps between re-selections of the backward pass's column mask (0: never).")
    var maskChangeFrequency = 100

    @Option(parsing: .unconditional, help: "Steps between validation passes (default: 10 per run).")
    var evalInterval: Int?

    @Option(parsing: .unconditional, help: "Batches per validation pass.")
    var evalBatches = 8

    @Option(parsing: .unconditional, help: "Steps between checkpoints (0: only at the end and on interruption).")
    var checkpointEvery = 0

    @Flag(inversion: .prefixedNo, help: "Write the checkpoint when the run ends (--no-final-checkpoint: benchmarks that need no model afterwards; an interruption, a non-finite loss and --checkpoint-every still write one).")
    var finalCheckpoint = true

    @Option(parsing: .unconditional, help: "Steps between progress lines (default: about 50 per run).")
    var logEvery: Int?

    @Flag(help: "Keep only each block's input between forward and backward and recompute the rest (activation checkpointing: far less memory, about a third more compute; same numbers; also with --resume).")
    var recomputeActivations = false

    @Flag(help: "In a data-parallel job, shard the optimizer state (ZeRO-1): each rank keeps the moments of about 1/N of the tensors and updates only those, then sends the new values to the others (same steps, bit for bit; checkpoints hold every moment and resume at any world size; also with --resume).")
    var shardOptimizer = false

    @Option(help: "Element type: float32 or bfloat16 (default: bfloat16 on a GPU, float32 on the CPU).")
    var dtype: DType?

    @Option(help: "auto (CUDA when available), cpu or cuda.")
    var device: DeviceOption = .auto

    @Option(parsing: .unconditional, help: "GPU ordinal (default: LOCAL_RANK in a data-parallel job, else 0).")
    var gpu: Int?

    @Option(parsing: .unconditional, help: "Vocabulary size of the model (default: the tokenizer's).")
    var vocabSize: Int?

    @Option(help: "Random seed (initialisation and data order).")
    var seed: UInt64 = 0

    @Option(help: "Run folder (default: runs/<model>-<slope|dense>).")
    var out: String?

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    @Flag(help: "Start a new run in an --out folder that already holds one (its checkpoint is replaced at the first save, its metrics restart).")
    var force = false

    @Flag(help: "With --resume: continue on the training text as it is now, though it changed since the run started (its shards are rebuilt).")
    var rebuildData = false

    @OptionGroup var dataOptions: DataOptions

    @OptionGroup(title: "BERT-style encoders") var encoderOptions: EncoderPretrainingOptions

    /// Every number checked before anything runs: what was given, why it cannot be, what would do.
    func validate() throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            guard condition else { throw ValidationError(message()) }
        }
        try require(steps.map { $0 >= 1 } ?? true, "--steps must be at least 1, not \(steps ?? 0)")
        try require(tokens.map { $0 >= 1 } ?? true, "--tokens must be at least 1, not \(tokens ?? 0)")
        try require(batchSize >= 1, "--batch-size must be at least 1, not \(batchSize)")
        try require(sequenceLength >= 2, "--sequence-length must be at least 2, not \(sequenceLength)")
        try require(gradientAccumulation >= 1, "--gradient-accumulation must be at least 1, not \(gradientAccumulation)")
        try require(learningRate.isFinite && learningRate > 0, "--lr must be a positive finite number, not \(learningRate)")
        try require(minimumLearningRate.map { $0.isFinite && $0 >= 0 && $0 <= learningRate } ?? true,
                    "--min-lr must be finite, at least 0 and at most --lr (\(learningRate)), not \(minimumLearningRate ?? 0)")
        try require(warmup.map { $0 >= 0 } ?? true, "--warmup must be at least 0, not \(warmup ?? 0)")
        try require(weightDecay.isFinite && weightDecay >= 0, "--weight-decay must be a finite number ≥ 0, not \(weightDecay)")
        try require((0..<1).contains(beta1) && (0..<1).contains(beta2), "--beta1 and --beta2 must be in [0, 1), not \(beta1) and \(beta2)")
        try require(epsilon.isFinite && epsilon > 0, "--eps must be a positive finite number, not \(epsilon)")
        try require(clip.isFinite && clip >= 0, "--clip must be a finite number ≥ 0 (0 turns clipping off), not \(clip)")
        try require((0...1).contains(adapterFraction), "--adapter-fraction must be between 0 and 1, not \(adapterFraction)")
        try require(adapterRank >= 1, "--adapter-rank must be at least 1, not \(adapterRank)")
        try require(maskChangeFrequency >= 0, "--mask-change-frequency must be at least 0 (0: never), not \(maskChangeFrequency)")
        try require(evalInterval.map { $0 >= 0 } ?? true, "--eval-interval must be at least 0, not \(evalInterval ?? 0)")
        try require(evalBatches >= 1, "--eval-batches must be at least 1, not \(evalBatches)")
        try require(checkpointEvery >= 0, "--checkpoint-every must be at least 0 (0: only at the end), not \(checkpointEvery)")
        try require(logEvery.map { $0 >= 1 } ?? true, "--log-every must be at least 1, not \(logEvery ?? 0)")
        try require(vocabSize.map { $0 >= 1 } ?? true, "--vocab-size must be at least 1, not \(vocabSize ?? 0)")
        try require(initFrom == nil || (model == "tiny" && vocabSize == nil),
                    "--init-from takes the model's shape and vocabulary from its weights; leave out --model and --vocab-size")
        try require(leadingBlocks >= 0, "--leading-blocks must be at least 0, not \(leadingBlocks)")
        try require(gpu.map { $0 >= 0 } ?? true, "--gpu must be a GPU ordinal (0, 1, …), not \(gpu ?? 0)")
        try require([.float32, .bfloat16].contains(optimizerState), "--optimizer-state must be float32 or bfloat16, not \(optimizerState)")
        try require(unstructuredSparsity.map { (0..<1).contains($0) } ?? true, "--unstructured-sparsity must be in [0, 1), not \(unstructuredSparsity ?? 0)")
        try require(unstructuredSparsity == nil || pruneAlong == .reduction, "--unstructured-sparsity and --prune-along output are two different masks; give one")
        try require((unstructuredSparsity == nil && pruneAlong == .reduction) || simulate || dense,
                    "\(unstructuredSparsity != nil ? "--unstructured-sparsity" : "--prune-along output") needs --simulate: no sparse kernel runs such a "
                        + "mask, so it is simulated with dense tensors and masks (as the original does)")
        try require(encoderOptions.maxPredictions.map { $0 >= 1 } ?? true, "--max-predictions must be at least 1, not \(encoderOptions.maxPredictions ?? 0)")
        try require(encoderOptions.dropout.map { (0..<1).contains($0) } ?? true, "--dropout must be in [0, 1), not \(encoderOptions.dropout ?? 0)")
        try require(encoderOptions.attentionDropout.map { (0..<1).contains($0) } ?? true,
                    "--attention-dropout must be in [0, 1), not \(encoderOptions.attentionDropout ?? 0)")
        try require(encoderOptions.sentencesPerDocument >= 1, "--sentences-per-document must be at least 1, not \(encoderOptions.sentencesPerDocument)")
    }

    /// Options a resumed run may change (applied, and said when they differ from the saved run's); every other
    /// option belongs to the run as it was started, and giving one with --resume is refused rather than ignored.
    static let changeableOnResume: Set<String> = [
        "--resume", "--out", "--steps", "--checkpoint-every", "--log-every", "--recompute-activations", "--shard-optimizer", "--final-checkpoint",
        "--no-final-checkpoint", "--device", "--gpu", "--rebuild-data",
    ]

    /// The long options named on the command line (`--lr 0.1` and `--lr=0.1` alike).
    static func givenOptions(_ arguments: [String]) -> Set<String> {
        Set(arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) })
    }

    func run() throws {
        var command = self
        let given = Self.givenOptions(Array(CommandLine.arguments.dropFirst()))
        if resume { try command.takeSavedRunSettings(given: given) }
        let extendingTo = resume && given.contains("--steps") ? steps : nil
        if trainsEncoder() {
            try command.takeEncoderDefaults(given: given)
            try command.startEncoder(extendingTo: extendingTo)
        } else {
            try command.start(extendingTo: extendingTo)
        }
    }

    /// With --resume: refuses options that would change the saved run, and takes the saved run's settings for the
    /// changeable ones not given (a resumed run keeps its --checkpoint-every, --log-every and recomputation).
    mutating func takeSavedRunSettings(given: Set<String>) throws {
        let fixed = given.subtracting(Self.changeableOnResume).sorted()
        guard fixed.isEmpty else {
            throw ValidationError(
                "\(fixed.joined(separator: ", ")) cannot change when resuming: a resumed run keeps the model, options and data it was "
                    + "started with. Leave \(fixed.count == 1 ? "it" : "them") out, or start a new run (another --out, or --force). "
                    + "A resumed run may change: \(Self.changeableOnResume.subtracting(["--resume", "--out"]).sorted().joined(separator: ", "))")
        }
        let path = (out ?? "") + "/checkpoint.safetensors"
        let file = out != nil && FileManager.default.fileExists(atPath: path) ? try? SafeTensors.read(path) : nil
        guard let file, let notes = (try? Checkpoint.state(of: file).notes) ?? (try? EncoderCheckpoint.state(of: file).notes) else {
            return  // resumedTrainer says what is missing
        }
        if !given.contains("--checkpoint-every"), let saved = notes["checkpoint_every"].flatMap(Int.init) { checkpointEvery = saved }
        if !given.contains("--log-every"), let saved = notes["log_every"].flatMap(Int.init) { logEvery = saved }
        if !given.contains("--recompute-activations"), notes["recompute_activations"] == "true" { recomputeActivations = true }
        if !given.contains("--shard-optimizer"), notes["shard_optimizer"] == "true" { shardOptimizer = true }
    }

    /// The run folder (`--out`, else `runs/NAME-dense|slope`) and its checkpoint's path. A run there is never
    /// overwritten by accident (the default --out is the same for every run of a model): without --resume or --force
    /// it is refused.
    func runFolder() throws -> (folder: String, checkpoint: String) {
        let name = model.split(separator: "/").last.map { $0.hasSuffix(".json") ? String($0.dropLast(5)) : String($0) } ?? model
        let folder = out ?? "runs/\(name)-\(dense ? "dense" : "slope")"
        let checkpoint = folder + "/checkpoint.safetensors"
        if !resume, !force, FileManager.default.fileExists(atPath: checkpoint) {
            throw ValidationError(
                "\(folder) already holds a run (\(checkpoint)); continue it with --resume, choose another --out, or pass --force to start over there")
        }
        return (folder, checkpoint)
    }

    /// Trains; `extendingTo` is --steps given with --resume (the run's new length).
    func start(extendingTo resumedSteps: Int?) throws {
        let environment = try DataParallelJob.environment()
        let compute = try ComputeDevice.make(device, gpu: gpu ?? environment?.localRank ?? 0)
        if let environment { consoleRank.store(environment.rank, ordering: .relaxed) }
        let job = try environment.map { try DataParallelJob.connect($0, compute: compute) }
        let leads = job?.isLeader ?? true
        let (folder, checkpointPath) = try runFolder()
        let created = leads && !FileManager.default.fileExists(atPath: folder)
        try RunFolder.create(folder)
        let (trainer, data, notes): (Trainer, LoadedData, [String: String])
        do {
            (trainer, data, notes) = try resume
                ? resumedTrainer(checkpointPath, folder: folder, compute: compute, communicator: job?.communicator, steps: resumedSteps)
                : newTrainer(folder: folder, compute: compute)
        } catch {
            if created { try? FileManager.default.removeItem(atPath: folder) }  // a failed start leaves no folder behind
            throw error
        }
        let options = trainer.options
        trainer.model.recomputesActivations = recomputeActivations
        trainer.communicator = job?.communicator
        trainer.shardsOptimizerState = shardOptimizer
        let configuration = trainer.model.configuration
        say("slope pretrain: \(notes["model"] ?? model) (\(configuration.family), \(formatCount(configuration.parameterCount)) parameters) on \(compute.backend.name)")
        say("  data        \(data.description); floor \(data.floor.map { formatted($0, digits: 3) + " nats/token" } ?? "unknown")")
        say("  training    \(options.steps) steps × \(options.tokensPerStep) tokens (batch \(options.batchSize) × \(options.sequenceLength)"
            + " × \(options.gradientAccumulation)), \(trainer.model.dtype), lr \(options.learningRate) \(options.decay), warm-up \(options.warmupSteps)"
            + (options.momentDType == .float32 ? "" : ", \(options.momentDType) optimizer state")
            + (recomputeActivations ? ", activations recomputed" : ""))
        say("  optimizer   \(options.optimizer == .lamb ? "LAMB" : "AdamW") β1 \(options.beta1) β2 \(options.beta2) ε \(options.epsilon ?? 1e-8), weight decay \(options.weightDecay) on "
            + ((options.weightDecayScope ?? .all) == .all ? "every tensor" : "matrices and embeddings") + "; "
            + ((options.sampling ?? .windows) == .windows ? "shuffled windows" : "random sampling") + " of the data"
            + (trainer.model.dtype == .bfloat16 ? "; bf16 weights rounded " + (options.weightRounding == .stochastic ? "stochastically" : "to nearest") : ""))
        let adapters = "adapters rank \(options.adapterRank) from step \(trainer.adapterStartStep)"
        if let report = trainer.sparsityReport {
            say("  SLoPe       \(report.summary); \(adapters)")
        } else if !trainer.model.sparseWeights.isEmpty {
            say("  SLoPe       \(trainer.model.sparseWeights.count) sparse layers (resumed); \(adapters)")
        } else {
            say("  dense       every linear dense")
        }
        if let job {
            say("  parallel    \(job.worldSize) rank\(job.worldSize == 1 ? "" : "s"), data-parallel over \(job.transport): global batch \(options.batchSize * job.worldSize) × "
                + "\(options.sequenceLength) × \(options.gradientAccumulation) = \(options.tokensPerStep * job.worldSize) tokens per step; rank 0 reports and writes")
            if shardOptimizer {
                let share = trainer.optimizerStateShare
                say("  ZeRO-1      optimizer state sharded: this rank keeps the moments of \(formatCount(share.kept)) of \(formatCount(share.total)) "
                    + "trained values (\(formatted(100 * Double(share.kept) / Double(max(share.total, 1)), digits: 1))%)")
            }
        } else if shardOptimizer {
            say("  ZeRO-1      --shard-optimizer has nothing to share out in a single process: every moment stays here")
        }
        say("  run folder  \(folder)")
        if leads { warnIfTheCheckpointWillNotFit(trainer, folder: folder, checkpointPath: checkpointPath) }
        try loop(trainer, data: data, notes: notes, compute: compute, job: job, folder: folder, checkpointPath: checkpointPath)
    }

    // MARK: Setting up

    func newTrainer(folder: String, compute: ComputeDevice) throws -> (Trainer, LoadedData, [String: String]) {
        var dataOptions = self.dataOptions
        let pretrained = try initFrom.map { try PretrainedModel.load($0, dtype: dtype ?? compute.defaultDType, backend: compute.backend) }
        // The model's own tokenizer, unless --tokenizer names another (the byte default does not).
        if let pretrained, dataOptions.tokenizer == "byte", pretrained.model.configuration.vocabularySize != ByteTokenizer().vocabularySize {
            dataOptions.tokenizer = pretrained.tokenizer ?? MissingTokenizer.name
            if pretrained.tokenizer == nil, !dataOptions.data.hasSuffix(".tokens") {
                throw ValidationError("\(initFrom!) has no tokenizer slope reads (\(pretrained.tokenizerProblem ?? "none found")); pass "
                    + "--tokenizer FILE, or --data as a .tokens shard made with its tokenizer")
            }
        }
        let data = try dataOptions.load(cacheFolder: folder + "/data")
        var configuration = try pretrained?.model.configuration ?? ModelConfiguration.resolve(model)
        if pretrained == nil { configuration.vocabularySize = vocabSize ?? data.tokenizer.vocabularySize }
        guard data.tokenizer.vocabularySize <= configuration.vocabularySize else {
            throw ValidationError("--vocab-size \(configuration.vocabularySize) is smaller than the tokenizer's \(data.tokenizer.vocabularySize) tokens")
        }
        guard sequenceLength <= configuration.contextLength else {
            throw ValidationError("--sequence-length \(sequenceLength) exceeds \(initFrom ?? model)'s context length \(configuration.contextLength)")
        }
        let tokensPerStep = batchSize * sequenceLength * gradientAccumulation
        let stepCount = tokens.map { max(1, $0 / tokensPerStep) } ?? steps ?? (model.hasPrefix("tiny") ? 600 : 1000)
        let options = try trainingOptions(steps: stepCount, warmup: warmup ?? max(1, stepCount / 20))
        let network = try pretrained?.model
            ?? TransformerModel(configuration: configuration, dtype: dtype ?? compute.defaultDType, backend: compute.backend, seed: seed)
        let trainer = try Trainer(model: network, options: options, trainTokens: data.train, validationTokens: data.validation)
        var notes = dataOptions.notes.merging(["model": model], uniquingKeysWith: { $1 }).merging(runNotes) { $1 }
        if let pretrained, let initFrom {
            notes["model"] = pretrained.description
            notes["init_from"] = initFrom
        }
        return (trainer, data, notes)
    }

    /// The run's options from the command line, for `steps` steps with `warmup` warm-up steps.
    func trainingOptions(steps stepCount: Int, warmup: Int) throws -> TrainingOptions {
        guard let decay = LearningRateSchedule.Decay(rawValue: decay) else { throw ValidationError("--decay must be constant, linear, cosine or polynomial, not '\(decay)'") }
        var plan: SparsityPlan?
        if !dense {
            plan = SparsityPlan(
                pattern: try NMPattern(parsing: pattern), leadingBlocks: leadingBlocks, leadingPattern: try leadingPattern.map(NMPattern.init(parsing:)),
                skipFirstBlock: skipFirstBlock, skipLastBlock: skipLastBlock, skipAttention: skipAttention, mode: simulate ? .simulated : .compressed,
                maskSelection: unstructuredSparsity.map { .unstructured(sparsity: $0) } ?? (pruneAlong == .output ? .outputDimension : .reductionDimension))
        }
        return TrainingOptions(
            steps: stepCount, batchSize: batchSize, sequenceLength: sequenceLength, gradientAccumulation: gradientAccumulation,
            learningRate: learningRate, minimumLearningRate: minimumLearningRate, warmupSteps: warmup, decay: decay,
            weightDecay: weightDecay, beta1: beta1, beta2: beta2, clipNorm: clip, sparsity: plan, adapterFraction: adapterFraction, adapterRank: adapterRank,
            maskChangeFrequency: maskChangeFrequency, evaluationInterval: evalInterval ?? max(1, stepCount / 10),
            evaluationBatches: evalBatches, seed: seed, optimizerState: optimizerState, sampling: sampling, epsilon: epsilon,
            weightDecayScope: weightDecayOn, weightRounding: bf16Rounding, optimizer: optimizer)
    }

    func resumedTrainer(
        _ path: String, folder: String, compute: ComputeDevice, communicator: (any Communicator)?, steps: Int?
    ) throws -> (Trainer, LoadedData, [String: String]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("nothing to resume: \(path) does not exist (pass the run's --out folder)")
        }
        let file = try SafeTensors.read(path)
        let state = try Checkpoint.state(of: file)
        let dataOptions = DataOptions.fromNotes(state.notes)
        if !rebuildData { try dataOptions.requireUnchangedShard(state.notes) }
        let data = try dataOptions.load(cacheFolder: folder + "/data", requireUnchanged: !rebuildData)
        // Sharded, each rank loads only the moments it owns at this world size.
        let trainer = try Checkpoint.resume(
            file, backend: compute.backend, trainTokens: data.train, validationTokens: data.validation, communicator: communicator,
            shardingOptimizerState: shardOptimizer
        ) {
            if let steps { $0.steps = steps }
        }
        say("resuming \(path) at step \(state.step) of \(trainer.options.steps)"
            + (trainer.options.steps != state.options.steps ? " (was \(state.options.steps): extended by --steps)" : "")
            + " with the options and data it was started with")
        // With --rebuild-data the data as it is now becomes the run's (its fingerprint saved for the next resume).
        return (trainer, data, state.notes.merging(runNotes) { $1 }.merging(rebuildData ? dataOptions.notes : [:]) { $1 })
    }

    /// The run settings outside TrainingOptions that a resume keeps (saved in the checkpoint's notes).
    var runNotes: [String: String] {
        ["checkpoint_every": "\(checkpointEvery)", "log_every": logEvery.map { "\($0)" } ?? "auto", "recompute_activations": "\(recomputeActivations)",
         "shard_optimizer": "\(shardOptimizer)"]
    }

    /// Says at start-up, not after training, when the folder's volume lacks room for the checkpoint (the atomic
    /// write needs it whole beside the previous one, which it replaces only at the end).
    func warnIfTheCheckpointWillNotFit(_ trainer: Trainer, folder: String, checkpointPath: String) {
        guard finalCheckpoint || checkpointEvery > 0, let available = DiskSpace.availableBytes(at: folder) else { return }
        let needed = Checkpoint.estimatedBytes(trainer)
        guard available < needed else { return }
        printError("warning: the checkpoint will take about \(byteCountText(needed)) but only \(byteCountText(available)) are free where "
            + "\(checkpointPath) goes; free some space, choose another --out, or pass --no-final-checkpoint (an interruption still writes one)")
    }

    // MARK: The loop

    func loop(
        _ trainer: Trainer, data: LoadedData, notes: [String: String], compute: ComputeDevice, job: DataParallelJob?, folder: String,
        checkpointPath: String
    ) throws {
        let options = trainer.options
        let leads = job?.isLeader ?? true  // the other ranks of a job keep their metrics in memory and write nothing
        let metrics = try MetricsLog(path: leads ? folder + "/metrics.jsonl" : nil, keepingThrough: trainer.step)
        let logInterval = logEvery ?? max(1, options.steps / 50)
        let flopsPerToken = trainer.model.configuration.trainingFLOPsPerToken(sequence: options.sequenceLength)
        // Tokens/s are the whole job's, so MFU is against every rank's GPU.
        let jobPeakFLOPS = compute.peakFLOPS.map { $0 * Double(job?.worldSize ?? 1) }
        let clock = ContinuousClock()
        let started = clock.now
        var window: (tokens: Int, seconds: Double, losses: [Double]) = (0, 0, [])
        var recentLosses: [Double] = []
        var lastRate = 0.0
        func save(_ reason: String) throws {
            // A sharded optimizer state is gathered from every rank; rank 0 writes.
            if leads || trainer.shardsOptimizerState { try Checkpoint.save(trainer, notes: notes, to: checkpointPath) }
            guard leads else { return }
            let plot = LossPlot.svg(metrics.records, floor: data.floor, title: "slope pretrain \(model)")
            try AtomicFile.write(Data(plot.utf8), to: folder + "/loss.svg")
            say("\(reason): checkpoint at step \(trainer.step) written to \(checkpointPath)")
        }
        installStopHandlers()
        let profile = StepProfile(compute, from: trainer.step, to: options.steps)
        while trainer.step < options.steps {
            let received = stopSignal.load(ordering: .relaxed)
            // A job's ranks stop together, after the same step (a signal may reach them at different times).
            let othersStopping = try job?.anyRankStopping(received != 0) ?? false
            if received != 0 || othersStopping {
                ProgressLineOutput.end()
                try save(received != 0 ? "stopped by signal \(received)" : "stopped with the other ranks (one was signalled)")
                say("resume with: slope pretrain --out \(folder) --resume" + (job == nil ? "" : " (started as this job was, e.g. by slope launch)"))
                throw ExitCode(130)
            }
            let begin = clock.now
            let result = try trainingStep(trainer.trainStep, save: save)
            let seconds = seconds(clock.now - begin)
            profile.stepDone(trainer.step)
            window.tokens += result.tokens
            window.seconds += seconds
            window.losses.append(result.loss)
            recentLosses = Array((recentLosses + [result.loss]).suffix(20))
            if result.startedAdapters {
                ProgressLineOutput.end()
                say("step \(result.step): lazy low-rank adapters attached (rank \(options.adapterRank)) for the last \(options.adapterSteps) steps")
            }
            if result.step % logInterval == 0 || result.step == options.steps || result.step == 1 {
                let rate = Double(window.tokens) / max(window.seconds, 1e-9)
                lastRate = rate
                let mfu = jobPeakFLOPS.map { rate * flopsPerToken / $0 }
                let memory = compute.backend.memoryStatistics
                let loss = window.losses.reduce(0, +) / Double(window.losses.count)
                try metrics.append(MetricsRecord(
                    step: result.step, loss: loss, learningRate: result.learningRate, gradientNorm: result.gradientNorm,
                    tokens: trainer.tokensSeen, tokensPerSecond: rate, mfu: mfu, memoryBytes: memory.currentBytes,
                    peakMemoryBytes: memory.peakBytes, elapsedSeconds: self.seconds(clock.now - started)))
                let line = ProgressLine.render(
                    step: result.step, of: options.steps, loss: loss, learningRate: result.learningRate, tokensPerSecond: rate, mfu: mfu,
                    memoryBytes: memory.currentBytes,
                    remainingSeconds: Double(options.steps - result.step) * Double(options.tokensPerStep) / max(rate, 1e-9))
                ProgressLineOutput.show(line)
                window = (0, 0, [])
            }
            if options.evaluationInterval > 0, result.step % options.evaluationInterval == 0 || result.step == options.steps {
                let validation = try trainer.validationLoss()
                try stopUnlessFinite(validation, step: result.step, save: save)
                try metrics.append(MetricsRecord(step: result.step, validationLoss: validation))
                ProgressLineOutput.end()
                say("step \(result.step): validation loss \(formatted(validation, digits: 4))"
                    + (data.floor.map { " (floor \(formatted($0, digits: 4)))" } ?? ""))
            }
            if checkpointEvery > 0, result.step % checkpointEvery == 0, result.step < options.steps { try save("periodic") }
        }
        ProgressLineOutput.end()
        profile.report()
        let validation = try metrics.records.last(where: { $0.step == trainer.step && $0.validationLoss != nil })?.validationLoss
            ?? trainer.validationLoss()
        try stopUnlessFinite(validation, step: trainer.step, save: save)
        if finalCheckpoint {
            try save("done")
        } else if leads {
            try AtomicFile.write(Data(LossPlot.svg(metrics.records, floor: data.floor, title: "slope pretrain \(model)").utf8), to: folder + "/loss.svg")
        }
        let train = recentLosses.reduce(0, +) / Double(max(recentLosses.count, 1))
        let memory = compute.backend.memoryStatistics
        say("""

            Summary
              final train loss   \(formatted(train, digits: 4)) (mean of the last \(recentLosses.count) steps)
              validation loss    \(formatted(validation, digits: 4))\(data.floor.map { "   corpus floor \(formatted($0, digits: 4)) (gap \(formatted(validation - $0, digits: 4)))" } ?? "")
              throughput         \(formatCount(Int(lastRate))) tokens/s\(jobPeakFLOPS.map { "   MFU \(formatted(100 * lastRate * flopsPerToken / $0, digits: 1))%" } ?? "")
              peak memory        \(byteCountText(memory.peakBytes))
              time               \(formatted(seconds(clock.now - started), digits: 1)) s for \(formatCount(trainer.tokensSeen)) tokens in total
              checkpoint         \(finalCheckpoint ? checkpointPath : "not written (--no-final-checkpoint)")
              metrics, plot      \(folder)/metrics.jsonl, \(folder)/loss.svg
            """ + (finalCheckpoint ? "\nNext: slope eval \(checkpointPath)   ·   slope generate \(checkpointPath) --prompt \"The\"" : ""))
    }

    func seconds(_ duration: Duration) -> Double { duration / .seconds(1) }

    /// A validation loss that is not finite stops the run like a training loss does: said plainly, the state
    /// checkpointed (the model as it is: the weights themselves are finite, or the training step would have
    /// stopped first), exit status 1.
    func stopUnlessFinite(_ validation: Double, step: Int, save: (String) throws -> Void) throws {
        guard !validation.isFinite else { return }
        ProgressLineOutput.end()
        printError("error: step \(step): the validation loss is \(validation); the model has diverged. Lower the learning rate, "
            + "enable clipping (--clip 1) or use float32")
        try save("state at the non-finite validation loss")
        throw ExitCode(1)
    }
}

/// One progress line: `step 120/600 [=====>    ] loss 1.234 lr 2.0e-03 9.1k tok/s 120 MB eta 1m20s`.
enum ProgressLine {
    static func render(
        step: Int, of total: Int, loss: Double, learningRate: Float, tokensPerSecond: Double, mfu: Double?, memoryBytes: Int,
        remainingSeconds: Double
    ) -> String {
        let width = 20
        let filled = min(width, step * width / max(total, 1))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        var parts = [
            "step \(step)/\(total) [\(bar)]", "loss \(formatted(loss, digits: 4))", "lr \(format6(Double(learningRate)))",
            "\(formatCount(Int(tokensPerSecond))) tok/s",
        ]
        if let mfu { parts.append("MFU \(formatted(100 * mfu, digits: 1))%") }
        parts.append(byteCountText(memoryBytes))
        parts.append("eta \(formatDuration(remainingSeconds))")
        return parts.joined(separator: "  ")
    }
}

func formatCount(_ value: Int) -> String {
    let v = Double(value)
    if v >= 1e9 { return formatted(v / 1e9, digits: 2) + "B" }
    if v >= 1e6 { return formatted(v / 1e6, digits: 1) + "M" }
    if v >= 1e4 { return formatted(v / 1e3, digits: 1) + "k" }
    return "\(value)"
}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
}

extension DType: ExpressibleByArgument {
    /// The element types a model can be trained or stored in (float64 is the CPU's reference precision).
    public static var allValueStrings: [String] { ["float32", "bfloat16", "float16", "float64"] }

    public init?(argument: String) {
        guard Self.allValueStrings.contains(argument) else { return nil }
        self.init(rawValue: argument)
    }
}

/// The dimension N:M groups run along (`--prune-along`).
enum PruneDimension: String, ExpressibleByArgument, CaseIterable {
    case reduction, output
}

extension WeightDecayScope: ExpressibleByArgument {}
extension UpdateRule: ExpressibleByArgument {}
extension TokenLoader.Sampling: ExpressibleByArgument {}
extension WeightRounding: ExpressibleByArgument {}
