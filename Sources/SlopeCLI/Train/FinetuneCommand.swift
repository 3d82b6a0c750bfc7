import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// `slope finetune`: a BERT-style encoder fine-tuned on a GLUE task, evaluated on its dev set with GLUE's metrics.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a BERT encoder (a transformers folder) on a GLUE task or SQuAD v1.1 and report the task's dev metrics.",
        discussion: """
            Reads the task's train.tsv and dev file from --data as GLUE distributes them, the encoder and its WordPiece \
            tokenizer.json from --init (a transformers BERT folder; a fine-tuned head of the same task is kept, otherwise \
            a new one is made), trains with AdamW (linear warm-up and decay, gradient clipping at 1, no weight decay on \
            biases and norms) and prints the dev metrics after each epoch. --out receives metrics.json, the dev \
            predictions (predictions-dev.tsv: index and label, GLUE's submission layout) and the fine-tuned model as a \
            transformers folder (model/). SQuAD (--task squad) reads train-v1.1.json and dev-v1.1.json, windows each \
            context (--max-length 384, --doc-stride, --max-query-length) and answers with n-best span decoding; it writes \
            predictions-dev.json (question id → answer, the official format) and reports exact match and F1. Sequences are \
            padded per batch (attention masks the padding). Weights stay float32; dropout as the model's configuration says \
            (--dropout, --attention-dropout).
            """)

    @Option(help: "The GLUE task (\(GLUETask.allCases.map(\.rawValue).joined(separator: ", "))) or squad (v1.1).")
    var task: String

    @Option(help: "The task's folder (train.tsv and the dev file).")
    var data: String

    @Option(name: .customLong("init"), help: "A transformers BERT folder (config.json, model.safetensors, tokenizer.json), or a checkpoint.safetensors of slope pretrain --model bert-… (SLoPe layers keep their masks).")
    var initial: String

    @Option(help: "Where to write metrics.json, predictions-dev.tsv and model/.")
    var out: String

    @Option(parsing: .unconditional, help: "Passes over the training set.")
    var epochs = 3

    @Option(parsing: .unconditional, help: "Sequences per step.")
    var batchSize = 32

    @Option(parsing: .unconditional, help: "Peak learning rate.")
    var lr: Float = 2e-5

    @Option(parsing: .unconditional, help: "Tokens per sequence at most ([CLS] and [SEP] included; default 128, 384 for SQuAD).")
    var maxLength: Int?

    @Option(parsing: .unconditional, help: "SQuAD: context tokens between the starts of a context's windows.")
    var docStride = 128

    @Option(parsing: .unconditional, help: "SQuAD: question tokens kept at most.")
    var maxQueryLength = 64

    @Option(parsing: .unconditional, help: "SQuAD: answer tokens at most.")
    var maxAnswerLength = 30

    @Option(parsing: .unconditional, help: "SQuAD: start and end candidates per window.")
    var nBest = 20

    @Option(parsing: .unconditional, help: "Fraction of the steps spent warming the learning rate up.")
    var warmupFraction = 0.1

    @Option(parsing: .unconditional, help: "Dropout while training, after the embeddings, attention and MLP outputs (default: the model's hidden_dropout_prob, BERT's 0.1; 0: none).")
    var dropout: Double?

    @Option(parsing: .unconditional, help: "Dropout of the attention probabilities while training (default: the model's attention_probs_dropout_prob, BERT's 0.1; 0: none).")
    var attentionDropout: Double?

    @Option(parsing: .unconditional, help: "Seed of the new head and of the shuffling.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Use only the first N training examples (quick runs).")
    var limit: Int?

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceOption = .auto

    @Flag(help: "Replace --out if it exists.")
    var force = false

    func validate() throws {
        guard GLUETask(rawValue: task) != nil || task == "squad" else {
            throw ValidationError("--task must be one of \(GLUETask.allCases.map(\.rawValue).joined(separator: ", ")) or squad, not '\(task)'")
        }
        guard epochs >= 1, batchSize >= 1 else { throw ValidationError("--epochs and --batch-size must be at least 1") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive finite number, not \(lr)") }
        guard (maxLength ?? 128) >= 4 else { throw ValidationError("--max-length must be at least 4, not \(maxLength ?? 0)") }
        guard docStride >= 1, maxQueryLength >= 1, maxAnswerLength >= 1, nBest >= 1 else {
            throw ValidationError("--doc-stride, --max-query-length, --max-answer-length and --n-best must be at least 1")
        }
        guard (0..<1).contains(warmupFraction) else { throw ValidationError("--warmup-fraction must be in [0, 1), not \(warmupFraction)") }
        guard limit.map({ $0 >= 1 }) ?? true else { throw ValidationError("--limit must be at least 1") }
        guard dropout.map({ (0..<1).contains($0) }) ?? true else { throw ValidationError("--dropout must be in [0, 1), not \(dropout ?? 0)") }
        guard attentionDropout.map({ (0..<1).contains($0) }) ?? true else {
            throw ValidationError("--attention-dropout must be in [0, 1), not \(attentionDropout ?? 0)")
        }
    }

    /// One example as the encoder sees it, and its labels (a class or score; SQuAD: a start and an end position).
    struct Sample {
        let ids: [Int32]
        let tokenTypes: [Int32]
        let labels: [Float]
    }

    func run() throws {
        if !force, FileManager.default.fileExists(atPath: out) {
            throw ValidationError("\(out) exists; choose another --out or pass --force to replace it")
        }
        let backend = try ComputeDevice.make(device).backend
        let (encoder, lacking, tokenizerPath) = try loadEncoder(backend)
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: tokenizerPath)
        guard tokenizer.id(of: "[CLS]") != nil, tokenizer.id(of: "[SEP]") != nil else {
            throw ValidationError("\(tokenizerPath) has no [CLS] or [SEP] token")
        }
        guard tokenizer.vocabularySize <= encoder.configuration.vocabularySize else {
            throw ValidationError("the tokenizer has \(tokenizer.vocabularySize) tokens, the model's vocabulary \(encoder.configuration.vocabularySize)")
        }
        if let dropout { try encoder.setDropout(dropout) }
        if let attentionDropout { try encoder.setAttentionDropout(attentionDropout) }
        encoder.removesPadding = try EncoderPadding.removesPadding()
        let glue = GLUETask(rawValue: task)
        let wanted: EncoderTaskHead.Task = glue.map { $0.isRegression ? .regression : .classification(labels: $0.labels.count) } ?? .questionAnswering
        // A transformers folder may hold a fine-tuned head; a pretraining checkpoint holds none.
        let loaded = HuggingFaceImport.isModelFolder(initial) ? try HuggingFaceEncoderImport.loadTaskHead(folder: initial, encoder: encoder) : nil
        let head = try loaded.flatMap { $0.task == wanted ? $0 : nil } ?? EncoderTaskHead(task: wanted, encoder: encoder, seed: seed)
        say("slope finetune: \(task) from \(initial) on \(backend.name) (\(encoder.configuration.layers) layers, hidden \(encoder.configuration.hiddenSize)"
            + (loaded?.task == wanted ? ", its \(task) head" : ", a new head") + (lacking.isEmpty ? "" : "; pretraining heads not in the folder") + ")")
        let (metrics, written) = try glue.map { try runGLUE($0, tokenizer, head) } ?? runSQuAD(tokenizer, head)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let encoderJSON = JSONEncoder()
        encoderJSON.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoderJSON.encode(["task": ["name": task], "dev": metrics.mapValues { "\($0)" }]), to: out + "/metrics.json")
        try AtomicFile.write(written.contents, to: out + "/" + written.name)
        try HuggingFaceEncoderExport.write(encoder, head: head, to: out + "/model")
        try FileManager.default.copyItem(atPath: tokenizerPath, toPath: out + "/model/tokenizer.json")
        say("wrote \(out)/metrics.json, \(written.name) and model/ (a transformers "
            + (wanted == .questionAnswering ? "BertForQuestionAnswering" : "BertForSequenceClassification") + " folder)")
    }

    /// The encoder of --init (float32), the pretraining-head tensors it lacks, and its tokenizer.json: a transformers
    /// BERT folder, or a `slope pretrain` encoder checkpoint (SLoPe layers and masks kept, so fine-tuning stays 2:4).
    private func loadEncoder(_ backend: any Backend) throws -> (EncoderModel, [String], String) {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: initial, isDirectory: &isDirectory) else { throw ValidationError("--init \(initial) does not exist") }
        if isDirectory {
            guard HuggingFaceImport.isModelFolder(initial) else { throw ValidationError("\(initial) is not a transformers model folder (no config.json there)") }
            let tokenizerPath = initial + "/tokenizer.json"
            guard FileManager.default.fileExists(atPath: tokenizerPath) else {
                throw ValidationError("\(initial) has no tokenizer.json (slope reads BERT's WordPiece from tokenizer.json; save the tokenizer with transformers first)")
            }
            let (encoder, lacking) = try HuggingFaceEncoderImport.load(folder: initial, dtype: .float32, backend: backend)
            return (encoder, lacking, tokenizerPath)
        }
        let (encoder, state) = try EncoderCheckpoint.loadModel(SafeTensors.read(initial), backend: backend, dtype: .float32)
        guard let tokenizerPath = encoderTokenizerPath(checkpoint: initial, notes: state.notes) else {
            throw ValidationError("\(initial)'s run folder has no tokenizer.json (the run's tokenizer, which fine-tuning needs)")
        }
        return (encoder, [], tokenizerPath)
    }

    /// Trains `head` (and its encoder) on `train` for --epochs, calling `evaluate` after each; returns its last result.
    private func train<Result>(
        _ train: [Sample], head: EncoderTaskHead, evaluate: () throws -> (metrics: [String: Double], result: Result)
    ) throws -> (metrics: [String: Double], result: Result) {
        let backend = head.encoder.backend
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize, totalSteps = stepsPerEpoch * epochs
        let schedule = try LearningRateSchedule(peak: lr, warmupSteps: Int(Double(totalSteps) * warmupFraction), totalSteps: totalSteps, decay: .linear)
        let trained = head.encoder.parameters + head.parameters, sparse = head.encoder.sparseWeights
        let configuration = AdamWConfiguration(learningRate: lr, weightDecay: 0.01)
        let optimizer = AdamW(parameters: trained, configuration: configuration, decayScope: .matrices, backend: backend)
        // A SLoPe encoder keeps its N:M masks: its sparse weights train with SparseAdamW.
        let sparseOptimizer = try SparseAdamW(weights: sparse, configuration: configuration, backend: backend)
        if !sparse.isEmpty { say("  \(sparse.count) SLoPe layers keep their N:M masks (SparseAdamW)") }
        say("  \(train.count) training sequences; \(epochs) epochs of \(stepsPerEpoch) steps of \(batchSize)")
        var generator = SeededGenerator(seed: seed)
        var step = 0
        var last: (metrics: [String: Double], result: Result)? = nil
        for epoch in 1...epochs {
            var order = Array(train.indices)
            order.shuffle(using: &generator)
            var total = 0.0
            for start in stride(from: 0, to: order.count, by: batchSize) {
                let batch = order[start..<min(start + batchSize, order.count)].map { train[$0] }
                let (tokens, types, lengths, sequence) = try padded(batch, backend)
                head.encoder.dropoutSeed = DropoutMask.layerSeed(seed &+ 0xF17E, layer: step)
                total += try head.loss(
                    tokens: tokens, tokenTypes: types, lengths: lengths, batch: batch.count, sequence: sequence, labels: batch.flatMap(\.labels))
                try head.backward()
                _ = try clipGradientNorm(parameters: trained, sparseWeights: sparse, maxNorm: 1, backend: backend)
                try optimizer.step(learningRate: schedule.learningRate(atStep: step))
                try sparseOptimizer.step(learningRate: schedule.learningRate(atStep: step))
                try optimizer.zeroGradients()
                try sparseOptimizer.zeroGradients()
                step += 1
            }
            head.encoder.dropoutSeed = nil  // evaluation drops nothing
            let evaluated = try evaluate()
            say("epoch \(epoch): train loss \(formatted(total / Double(stepsPerEpoch), digits: 4)); dev "
                + evaluated.metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value, digits: 4))" }.joined(separator: ", "))
            last = evaluated
        }
        return last!
    }

    /// The head's outputs for `samples`, batch by batch: `[outputs]` per sample, or for question answering the start
    /// logits then the end logits of each sample's tokens.
    private func outputs(_ samples: [Sample], head: EncoderTaskHead) throws -> [[Float]] {
        var rows: [[Float]] = []
        for start in stride(from: 0, to: samples.count, by: batchSize) {
            let batch = Array(samples[start..<min(start + batchSize, samples.count)])
            let (tokens, types, lengths, sequence) = try padded(batch, head.encoder.backend)
            let logits = try head.encoder.backend.floats(
                head.logits(tokens: tokens, tokenTypes: types, lengths: lengths, batch: batch.count, sequence: sequence))
            if head.task == .questionAnswering {  // rows [starts; ends] of `sequence` each
                for b in 0..<batch.count {
                    let starts = logits[(b * sequence)..<((b + 1) * sequence)]
                    let endRow = batch.count + b
                    let ends = logits[(endRow * sequence)..<((endRow + 1) * sequence)]
                    rows.append(Array(starts) + Array(ends))
                }
            } else {
                let width = logits.count / batch.count
                for b in 0..<batch.count { rows.append(Array(logits[(b * width)..<((b + 1) * width)])) }
            }
        }
        return rows
    }

    /// A GLUE task: dev metrics as GLUE reports them, and the predictions in its submission layout.
    private func runGLUE(_ task: GLUETask, _ tokenizer: WordPieceTokenizer, _ head: EncoderTaskHead) throws -> ([String: Double], (name: String, contents: Data)) {
        let (classifier, separator) = (tokenizer.id(of: "[CLS]")!, tokenizer.id(of: "[SEP]")!)
        func samples(_ split: GLUETask.Split) throws -> [(Sample, GLUEExample.Label)] {
            var (examples, skipped) = try GLUEReader.read(task, split: split, folder: data)
            if split == .train, let limit { examples = Array(examples.prefix(limit)) }
            if skipped > 0 { say("  \(split): \(skipped) malformed rows skipped (as GLUE's reference processors skip them)") }
            return try examples.map { example in
                let features = try SentencePairFeatures(
                    first: tokenizer.encodeWithoutAddedTokens(example.first), second: example.second.map { try tokenizer.encodeWithoutAddedTokens($0) },
                    classifier: classifier, separator: separator, maxLength: maxLength ?? 128)
                let label: Float
                switch example.label {
                case .classIndex(let index): label = Float(index)
                case .score(let score): label = Float(score)
                }
                return (Sample(ids: features.ids, tokenTypes: features.tokenTypes, labels: [label]), example.label)
            }
        }
        let train = try samples(.train).map(\.0), dev = try samples(.dev)
        guard !train.isEmpty, !dev.isEmpty else { throw ValidationError("\(data) has no training or no dev examples for \(task.rawValue)") }
        let (metrics, predictions) = try self.train(train, head: head) { try evaluate(task, head: head, dev: dev) }
        let tsv = (["index\tprediction"] + predictions.enumerated().map { "\($0)\t\($1)" }).joined(separator: "\n") + "\n"
        return (metrics, ("predictions-dev.tsv", Data(tsv.utf8)))
    }

    /// SQuAD v1.1: exact match and F1 on dev (the official normalisation), and the predictions in the official format.
    private func runSQuAD(_ tokenizer: WordPieceTokenizer, _ head: EncoderTaskHead) throws -> ([String: Double], (name: String, contents: Data)) {
        let length = maxLength ?? 384
        func read(_ name: String, answers: Bool) throws -> [SQuADQuestion] {
            let path = data + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(data) has no \(name) (SQuAD v1.1 as distributed)") }
            return try SQuADReader.read(path: path, requireAnswers: answers)
        }
        var questions = try read("train-v1.1.json", answers: true)
        if let limit { questions = Array(questions.prefix(limit)) }
        let dev = try read("dev-v1.1.json", answers: true)
        func features(_ question: SQuADQuestion) throws -> [SQuADFeature] {
            try SQuADFeatures.make(question, tokenizer: tokenizer, maxLength: length, stride: docStride, maxQueryLength: maxQueryLength)
        }
        let train = try questions.flatMap(features).map {
            Sample(ids: $0.ids, tokenTypes: $0.tokenTypes, labels: [Float($0.startPosition), Float($0.endPosition)])
        }
        let devFeatures = try dev.map(features)
        guard !train.isEmpty, !dev.isEmpty else { throw ValidationError("\(data) has no training or no dev questions") }
        let (metrics, predictions) = try self.train(train, head: head) { () -> ([String: Double], [String: String]) in
            let flat = devFeatures.flatMap { $0 }
            let logits = try outputs(flat.map { Sample(ids: $0.ids, tokenTypes: $0.tokenTypes, labels: []) }, head: head)
            var predictions: [String: String] = [:], next = 0
            for (question, windows) in zip(dev, devFeatures) {
                let spans = windows.enumerated().map { index, feature -> SQuADSpans.Feature in
                    let row = logits[next + index], sequence = row.count / 2
                    return SQuADSpans.Feature(
                        startLogits: Array(row[0..<feature.ids.count]), endLogits: Array(row[sequence..<(sequence + feature.ids.count)]),
                        offsets: feature.offsets, isMaxContext: feature.isMaxContext)
                }
                next += windows.count
                predictions[question.id] = SQuADSpans.answers(context: question.context, features: spans, nBest: nBest, maxAnswerLength: maxAnswerLength)
                    .first?.text ?? ""
            }
            let score = SQuADScore.evaluate(answers: Dictionary(uniqueKeysWithValues: dev.map { ($0.id, $0.answers.map(\.text)) }), predictions: predictions)
            return (["exact_match": score.exactMatch, "f1": score.f1], predictions)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (metrics, ("predictions-dev.json", try encoder.encode(predictions)))
    }

    /// A batch padded to its longest sequence: token ids, token types, each sequence's length, the padded length.
    private func padded(_ batch: [Sample], _ backend: any Backend) throws -> (Tensor, Tensor, [Int], Int) {
        let sequence = batch.map(\.ids.count).max()!
        let ids = batch.flatMap { $0.ids + [Int32](repeating: 0, count: sequence - $0.ids.count) }
        let types = batch.flatMap { $0.tokenTypes + [Int32](repeating: 0, count: sequence - $0.tokenTypes.count) }
        return (try backend.tensor(ids, shape: [ids.count]), try backend.tensor(types, shape: [types.count]), batch.map(\.ids.count), sequence)
    }

    /// The dev metrics GLUE reports for the task, and each example's prediction as its label (a score for STS-B).
    private func evaluate(_ task: GLUETask, head: EncoderTaskHead, dev: [(Sample, GLUEExample.Label)]) throws -> ([String: Double], [String]) {
        let scores = try outputs(dev.map(\.0), head: head)
        if task.isRegression {
            let predicted = scores.map { Double($0[0]) }
            let gold = dev.map { example -> Double in
                if case .score(let score) = example.1 { return score }
                return 0
            }
            let metrics = ["pearson": TaskMetrics.pearson(predicted, gold) ?? .nan, "spearman": TaskMetrics.spearman(predicted, gold) ?? .nan]
            return (metrics, predicted.map { "\($0)" })
        }
        let predicted = scores.map { row in row.indices.max { row[$0] < row[$1] }! }
        let gold = dev.map { example -> Int in
            if case .classIndex(let index) = example.1 { return index }
            return 0
        }
        var metrics: [String: Double] = [:]
        for name in task.metrics {
            switch name {
            case "matthews_correlation": metrics[name] = TaskMetrics.matthewsCorrelation(predictions: predicted, labels: gold) ?? .nan
            case "f1": metrics[name] = TaskMetrics.f1(predictions: predicted, labels: gold) ?? .nan
            default: metrics[name] = TaskMetrics.accuracy(predictions: predicted, labels: gold) ?? .nan
            }
        }
        return (metrics, predicted.map { task.labels[$0] })
    }
}
