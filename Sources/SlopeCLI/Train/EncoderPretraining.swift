import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// The tokenizer.json of an encoder run: the one in the checkpoint's folder (every run keeps a copy there), else the
/// path the run recorded.
func encoderTokenizerPath(checkpoint: String, notes: [String: String]) -> String? {
    let sibling = URL(fileURLWithPath: checkpoint).deletingLastPathComponent().appendingPathComponent("tokenizer.json").path
    return [sibling, notes["tokenizer_file"]].compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0) }
}

/// The options of `slope pretrain` that only BERT-style encoders take.
struct EncoderPretrainingOptions: ParsableArguments {
    @Option(help: "Encoders: static (each sentence pair masked once, as BERT's data) or dynamic (masked anew every epoch, as RoBERTa).")
    var masking: MaskedLanguageModelingBatches.Masking = .static

    @Option(parsing: .unconditional, help: "Encoders: predicted tokens per sequence at most (default: 15.6% of --sequence-length: NVIDIA's 20 at 128, 80 at 512).")
    var maxPredictions: Int?

    @Flag(inversion: .prefixedNo, help: "Encoders: train next-sentence prediction beside the masked LM (--no-next-sentence: masked LM only).")
    var nextSentence = true

    @Option(parsing: .unconditional, help: "Encoders: dropout while training, after the embeddings, attention and MLP outputs (default: the model's, 0.1 for the BERT shapes; 0: none).")
    var dropout: Double?

    @Option(parsing: .unconditional, help: "Encoders: dropout of the attention probabilities while training (default: the model's, 0.1 for the BERT shapes; 0: none).")
    var attentionDropout: Double?

    @Option(parsing: .unconditional, help: "Encoders: sentences of the embedded corpus per document.")
    var sentencesPerDocument = 8
}

extension MaskedLanguageModelingBatches.Masking: ExpressibleByArgument {}

/// BERT pretraining through `slope pretrain --model bert-base|bert-large|tiny-bert|encoder.json`: text in Google's
/// layout (a sentence per line, blank lines between documents) or the embedded corpus, a WordPiece tokenizer.json
/// (or one made from the text), sentence pairs with masked LM and next-sentence prediction, LAMB with NVIDIA's
/// schedule unless told otherwise, SLoPe as for decoders, checkpoints that resume exactly.
extension PretrainCommand {
    /// NVIDIA's BERT phase-1 settings, applied to the options not given on the command line.
    static let encoderRecipe: [(option: String, apply: @Sendable (inout PretrainCommand) -> Void)] = [
        ("--optimizer", { $0.optimizer = .lamb }),
        ("--lr", { $0.learningRate = $0.model == "tiny-bert" ? 2e-2 : 6e-3 }),
        ("--min-lr", { $0.minimumLearningRate = 0 }),
        ("--beta2", { $0.beta2 = 0.999 }),
        ("--eps", { $0.epsilon = 1e-6 }),
        ("--weight-decay", { $0.weightDecay = 0.01 }),
        ("--weight-decay-on", { $0.weightDecayOn = .matrices }),
        ("--decay", { $0.decay = "polynomial" }),
    ]

    /// NVIDIA's phase-1 warm-up: 28.43% of the steps.
    static let encoderWarmupFraction = 0.2843

    /// Whether this run trains a BERT-style encoder: --model names one (or is an encoder JSON), --init-from is a
    /// BERT folder or an encoder checkpoint, or --resume finds an encoder run.
    func trainsEncoder() -> Bool {
        if resume, let out, let file = try? SafeTensors.read(out + "/checkpoint.safetensors") { return EncoderCheckpoint.holdsEncoder(file) }
        if let initFrom {
            if HuggingFaceImport.isModelFolder(initFrom) { return (try? HuggingFaceEncoderImport.configuration(folder: initFrom)) != nil }
            return (try? SafeTensors.read(initFrom)).map(EncoderCheckpoint.holdsEncoder) ?? false
        }
        return (try? encoderConfiguration()) != nil
    }

    /// --model as an encoder: a name, or a JSON file of EncoderConfiguration.
    func encoderConfiguration() throws -> EncoderConfiguration {
        guard model.hasSuffix(".json") else { return try EncoderConfiguration.named(model) }
        guard let data = FileManager.default.contents(atPath: model) else { throw ValidationError("cannot read \(model)") }
        let configuration = try JSONDecoder().decode(EncoderConfiguration.self, from: data)
        try configuration.validate()
        return configuration
    }

    /// Applies ``encoderRecipe`` to what was not given, and refuses the decoder-only options.
    mutating func takeEncoderDefaults(given: Set<String>) throws {
        let decoderOnly = ["--sampling", "--shard-optimizer"].filter(given.contains)
        guard decoderOnly.isEmpty else {
            throw ValidationError("\(decoderOnly.joined(separator: ", ")) \(decoderOnly.count == 1 ? "applies" : "apply") to decoders only; encoders "
                + "train sentence pairs, without a sharded optimizer yet")
        }
        guard ProcessInfo.processInfo.environment["WORLD_SIZE"].flatMap(Int.init).map({ $0 <= 1 }) ?? true else {
            throw ValidationError("encoder pretraining runs in one process for now; start it without slope launch")
        }
        guard !resume else { return }
        for (option, apply) in Self.encoderRecipe where !given.contains(option) { apply(&self) }
    }

    func startEncoder(extendingTo resumedSteps: Int?) throws {
        let removesPadding = try EncoderPadding.removesPadding()
        let compute = try ComputeDevice.make(device, gpu: gpu ?? 0)
        let (folder, checkpointPath) = try runFolder()
        let created = !FileManager.default.fileExists(atPath: folder)
        try RunFolder.create(folder)
        let (trainer, data, notes): (EncoderTrainer, EncoderData, [String: String])
        do {
            (trainer, data, notes) = try resume
                ? resumedEncoderTrainer(checkpointPath, folder: folder, compute: compute, steps: resumedSteps)
                : newEncoderTrainer(folder: folder, compute: compute)
        } catch {
            if created { try? FileManager.default.removeItem(atPath: folder) }
            throw error
        }
        trainer.model.recomputesActivations = recomputeActivations
        trainer.model.removesPadding = removesPadding
        let options = trainer.options, configuration = trainer.model.configuration
        say("slope pretrain: \(notes["model"] ?? model) (encoder, \(configuration.layers) layers, hidden \(configuration.hiddenSize), "
            + "\(formatCount(configuration.checkedParameterCount ?? 0)) parameters) on \(compute.backend.name)")
        say("  data        \(data.description)")
        say("  examples    sentence pairs of ≤ \(options.sequenceLength) tokens, ≤ \(data.train.masking.maxPredictions) predictions each, "
            + "\(data.train.mode) masking" + (trainer.nextSentencePrediction ? ", next-sentence prediction" : ", masked LM only")
            + ", dropout \(configuration.dropoutProbability) (attention \(configuration.attentionDropoutProbability))" + (trainer.model.removesPadding ? "" : ", padding kept (SLOPE_KEEP_PADDING=1)"))
        say("  training    \(options.steps) steps × \(options.batchSize) × \(options.gradientAccumulation) pairs, \(trainer.model.dtype), "
            + "lr \(options.learningRate) \(options.decay) to \(options.minimumLearningRate), warm-up \(options.warmupSteps)"
            + (recomputeActivations ? ", activations recomputed" : ""))
        say("  optimizer   \(options.optimizer == .lamb ? "LAMB" : "AdamW") β1 \(options.beta1) β2 \(options.beta2) ε \(options.epsilon ?? 1e-8), "
            + "weight decay \(options.weightDecay) on " + ((options.weightDecayScope ?? .all) == .all ? "every tensor" : "matrices and embeddings"))
        let adapters = "adapters rank \(options.adapterRank) from step \(trainer.adapterStartStep)"
        if let report = trainer.sparsityReport {
            say("  SLoPe       \(report.summary); \(adapters)")
        } else if !trainer.model.sparseWeights.isEmpty {
            say("  SLoPe       \(trainer.model.sparseWeights.count) sparse layers (resumed or from --init-from); \(adapters)")
        } else {
            say("  dense       every linear dense")
        }
        say("  run folder  \(folder)")
        try encoderLoop(trainer, notes: notes, compute: compute, folder: folder, checkpointPath: checkpointPath)
    }

    /// The sentence pairs of a run and where they came from.
    struct EncoderData {
        let train: MaskedLanguageModelingBatches
        let validation: MaskedLanguageModelingBatches
        let tokenizerPath: String
        let description: String
    }

    /// Reads the text (--data: the embedded corpus, a file or a folder of .txt files; each file's blank-line
    /// separated documents), tokenizes it with `tokenizerPath` (made from the text first when absent), holds out
    /// the last documents for validation and makes the sentence pairs (seeded, so a resume gets the same ones).
    func encoderData(
        cacheFolder: String, tokenizerPath: String, buildTokenizer: Bool, vocabularyLimit: Int, sequenceLength: Int, maxPredictions: Int, masking: MaskedLanguageModelingBatches.Masking,
        batchSize: Int, seed: UInt64, options data: DataOptions
    ) throws -> EncoderData {
        func texts() throws -> [String] {
            guard data.data != "embedded" else {
                return [PretrainingDocuments.embedded(sentences: data.corpusSentences, sentencesPerDocument: encoderOptions.sentencesPerDocument)]
            }
            return try Self.textFiles(data.data).map { path in
                guard let contents = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
                return String(decoding: contents, as: UTF8.self)
            }
        }
        if buildTokenizer {
            let json = try WordPieceVocabularyBuilder.tokenizerJSON(text: try texts().joined(separator: "\n"), size: vocabularyLimit)
            try AtomicFile.write(json, to: tokenizerPath)
        }
        let tokenizer: WordPieceTokenizer
        do { tokenizer = try WordPieceTokenizer(tokenizerJSON: tokenizerPath) } catch {
            throw ValidationError("encoders need a WordPiece tokenizer.json (BERT's, e.g. bert-base-uncased's): \(error)")
        }
        let special: MaskedLanguageModeling.SpecialIDs
        do { special = try .init(tokenizer) } catch { throw ValidationError("\(tokenizerPath): \(error)") }
        // Tokenized once into the run's data folder; a resume (or a rerun on the same text) reads the shard back.
        let tokenizerBytes = (try? FileBytes.attributes(of: tokenizerPath).size) ?? 0
        let recipe = "\(try Self.dataFingerprint(data.data)); corpus sentences \(data.corpusSentences), \(encoderOptions.sentencesPerDocument) per "
            + "document; tokenizer \(tokenizerBytes) bytes, \(tokenizer.vocabularySize) tokens"
        let (documents, reused) = try PretrainingDocuments.cached(in: cacheFolder, recipe: recipe) {
            try texts().flatMap { try PretrainingDocuments.tokenize(PretrainingDocuments.split($0), tokenizer.encodeWithoutAddedTokens) }
        }
        guard documents.count >= 2 else {
            throw ValidationError("\(data.data) holds \(documents.count) document\(documents.count == 1 ? "" : "s"); BERT pretraining needs several "
                + "(one sentence per line, a blank line between documents)")
        }
        let held = min(documents.count - 1, max(1, Int((Double(documents.count) * data.validationFraction).rounded())))
        let masker = try MaskedLanguageModeling(
            special: special, vocabularySize: tokenizer.vocabularySize, sequenceLength: sequenceLength, maxPredictions: maxPredictions)
        var generator = SeededGenerator(seed: seed &+ 0xDA7A)
        let trainPairs = masker.instances(documents: Array(documents.dropLast(held)), using: &generator)
        let validationPairs = masker.instances(documents: Array(documents.suffix(held)), using: &generator)
        let tokens = trainPairs.map(\.ids.count).reduce(0, +)
        do {
            return EncoderData(
                train: try MaskedLanguageModelingBatches(instances: trainPairs, masking: masker, mode: masking, batchSize: batchSize, seed: seed),
                validation: try MaskedLanguageModelingBatches(
                    instances: validationPairs, masking: masker, mode: .static, batchSize: min(batchSize, validationPairs.count), seed: seed &+ 1),
                tokenizerPath: tokenizerPath,
                description: (data.data == "embedded" ? "embedded corpus, \(data.corpusSentences) sentences" : data.data)
                    + ": \(documents.count) documents, \(trainPairs.count) training pairs (\(formatCount(tokens)) tokens) and "
                    + "\(validationPairs.count) validation pairs; WordPiece vocabulary of \(tokenizer.vocabularySize)"
                    + (buildTokenizer ? " made from the text (\(tokenizerPath))" : " from \(tokenizerPath)")
                    + (reused ? "; tokenized documents read back from \(cacheFolder)" : ""))
        } catch let error as MaskedLanguageModelingError {
            throw ValidationError("\(error)")
        }
    }

    /// A text file, or a folder's .txt files in name order.
    static func textFiles(_ path: String) throws -> [String] {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ValidationError("--data \(path) does not exist") }
        guard isDirectory else { return [path] }
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".txt") }.sorted().map { path + "/" + $0 }
        guard !files.isEmpty else { throw ValidationError("\(path) has no .txt files") }
        return files
    }

    func newEncoderTrainer(folder: String, compute: ComputeDevice) throws -> (EncoderTrainer, EncoderData, [String: String]) {
        try require(dataOptions.tokenizer == "byte" || dataOptions.tokenizer.hasSuffix(".json"),
                    "--tokenizer for an encoder is a WordPiece tokenizer.json (or none: one is made from the text)")
        let dtype = dtype ?? compute.defaultDType
        // --init-from: a transformers BERT folder, or an encoder checkpoint (phase 2 of NVIDIA's recipe: length 512
        // from phase 1's weights, SLoPe layers and masks included).
        var initial: (model: EncoderModel, tokenizer: String?, description: String)?
        if let initFrom {
            if HuggingFaceImport.isModelFolder(initFrom) {
                let model = try HuggingFaceEncoderImport.load(folder: initFrom, dtype: dtype, backend: compute.backend).model
                let tokenizer = FileManager.default.fileExists(atPath: initFrom + "/tokenizer.json") ? initFrom + "/tokenizer.json" : nil
                initial = (model, tokenizer, "BERT from \(initFrom)")
            } else {
                let (model, state) = try EncoderCheckpoint.loadModel(SafeTensors.read(initFrom), backend: compute.backend)
                try require(!state.adaptersAttached, "\(initFrom) already trained with adapters; continue from a run with --adapter-fraction 0 "
                    + "(adapters belong to the last steps of the last phase)")
                try require(model.dtype == dtype, "\(initFrom) holds \(model.dtype) weights; pass --dtype \(model.dtype)")
                try require(model.sparseWeights.isEmpty || !dense, "\(initFrom) is a SLoPe model; drop --dense to continue it sparse")
                initial = (model, state.notes["tokenizer_file"], "encoder from \(initFrom) (step \(state.step))")
            }
        }
        let tokenizerGiven = dataOptions.tokenizer != "byte" ? dataOptions.tokenizer : initial?.tokenizer
        let configurationVocabulary = initial?.model.configuration.vocabularySize ?? (try? encoderConfiguration().vocabularySize) ?? 30_522
        let tokenizerPath = folder + "/tokenizer.json"
        if let tokenizerGiven, tokenizerGiven != tokenizerPath {
            try? FileManager.default.removeItem(atPath: tokenizerPath)
            try FileManager.default.copyItem(atPath: tokenizerGiven, toPath: tokenizerPath)
        }
        let predictions = encoderOptions.maxPredictions ?? max(1, Int((Double(sequenceLength) * 0.15625).rounded()))
        let data = try encoderData(
            cacheFolder: folder + "/data", tokenizerPath: tokenizerPath, buildTokenizer: tokenizerGiven == nil, vocabularyLimit: vocabSize ?? configurationVocabulary,
            sequenceLength: sequenceLength, maxPredictions: predictions, masking: encoderOptions.masking, batchSize: batchSize, seed: seed,
            options: dataOptions)
        let vocabulary = data.train.masking.vocabularySize
        var configuration = try initial?.model.configuration ?? encoderConfiguration()
        if initial == nil { configuration.vocabularySize = vocabSize ?? vocabulary }
        try require(vocabulary <= configuration.vocabularySize,
                    "the tokenizer has \(vocabulary) tokens but the model's vocabulary is \(configuration.vocabularySize)")
        try require(sequenceLength <= configuration.contextLength,
                    "--sequence-length \(sequenceLength) exceeds the encoder's \(configuration.contextLength) positions")
        let stepCount = tokens.map { max(1, $0 / (batchSize * sequenceLength * gradientAccumulation)) } ?? steps ?? (model.hasPrefix("tiny") ? 600 : 1000)
        let options = try trainingOptions(steps: stepCount, warmup: warmup ?? max(1, Int(Double(stepCount) * Self.encoderWarmupFraction)))
        let network = try initial?.model ?? EncoderModel(configuration: configuration, dtype: dtype, backend: compute.backend, seed: seed)
        if let dropout = encoderOptions.dropout { try network.setDropout(dropout) }
        if let dropout = encoderOptions.attentionDropout { try network.setAttentionDropout(dropout) }
        let trainer = try EncoderTrainer(
            model: network, options: options, train: data.train, validation: data.validation, nextSentencePrediction: encoderOptions.nextSentence)
        var notes = dataOptions.notes.merging(["model": model, "tokenizer_file": tokenizerPath], uniquingKeysWith: { $1 })
            .merging(runNotes) { $1 }
        notes["tokenizer"] = tokenizerGiven ?? "made from the text"
        notes["sentences_per_document"] = "\(encoderOptions.sentencesPerDocument)"
        notes["data_fingerprint"] = try Self.dataFingerprint(dataOptions.data)
        if let initial, let initFrom {
            notes["model"] = initial.description
            notes["init_from"] = initFrom
        }
        return (trainer, data, notes)
    }

    /// Sizes and modification times of the text files, so a resume can tell the text has not changed.
    static func dataFingerprint(_ data: String) throws -> String {
        guard data != "embedded" else { return "embedded" }
        return try textFiles(data).map { path in
            let (bytes, modified) = try FileBytes.attributes(of: path)
            return "\(path):\(bytes):\(modified)"
        }.joined(separator: ";")
    }

    func resumedEncoderTrainer(_ path: String, folder: String, compute: ComputeDevice, steps: Int?) throws -> (EncoderTrainer, EncoderData, [String: String]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("nothing to resume: \(path) does not exist (pass the run's --out folder)")
        }
        let file = try SafeTensors.read(path)
        let state = try EncoderCheckpoint.state(of: file)
        let dataOptions = DataOptions.fromNotes(state.notes)
        let fingerprint = try Self.dataFingerprint(dataOptions.data)
        guard rebuildData || state.notes["data_fingerprint"] == fingerprint else {
            throw ValidationError("the training text \(dataOptions.data) changed since the run started, so a resumed run would train on other "
                + "sentence pairs; restore it, or pass --rebuild-data to continue on it as it is now")
        }
        var command = self
        command.encoderOptions.sentencesPerDocument = state.notes["sentences_per_document"].flatMap(Int.init) ?? 8
        let tokenizerPath = state.notes["tokenizer_file"] ?? folder + "/tokenizer.json"
        let data = try command.encoderData(
            cacheFolder: folder + "/data", tokenizerPath: tokenizerPath, buildTokenizer: false, vocabularyLimit: 0, sequenceLength: state.options.sequenceLength,
            maxPredictions: state.maxPredictions, masking: state.masking, batchSize: state.options.batchSize, seed: state.options.seed,
            options: dataOptions)
        let trainer = try EncoderCheckpoint.resume(file, backend: compute.backend, train: data.train, validation: data.validation) {
            if let steps { $0.steps = steps }
        }
        say("resuming \(path) at step \(state.step) of \(trainer.options.steps) with the options and data it was started with")
        var notes = state.notes.merging(runNotes) { $1 }
        if rebuildData { notes["data_fingerprint"] = fingerprint }
        return (trainer, data, notes)
    }

    func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        guard condition else { throw ValidationError(message()) }
    }
}
