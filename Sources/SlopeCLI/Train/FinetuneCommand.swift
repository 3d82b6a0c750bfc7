import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// `slope finetune`: a BERT-style encoder fine-tuned on a GLUE task, evaluated on its dev set with GLUE's metrics.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a BERT encoder (a transformers folder) on a GLUE task and report the task's dev metrics.",
        discussion: """
            Reads the task's train.tsv and dev file from --data as GLUE distributes them, the encoder and its WordPiece \
            tokenizer.json from --init (a transformers BERT folder; a fine-tuned head of the same task is kept, otherwise \
            a new one is made), trains with AdamW (linear warm-up and decay, gradient clipping at 1, no weight decay on \
            biases and norms) and prints the dev metrics after each epoch. --out receives metrics.json, the dev \
            predictions (predictions-dev.tsv: index and label, GLUE's submission layout) and the fine-tuned model as a \
            transformers folder (model/). Sequences are padded per batch (attention masks the padding; on CUDA through the \
            GEMM attention route, the fused kernels not yet taking padding). Weights stay float32.
            """)

    @Option(help: "The GLUE task: \(GLUETask.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: String

    @Option(help: "The task's folder (train.tsv and the dev file).")
    var data: String

    @Option(name: .customLong("init"), help: "A transformers BERT folder (config.json, model.safetensors, tokenizer.json).")
    var initial: String

    @Option(help: "Where to write metrics.json, predictions-dev.tsv and model/.")
    var out: String

    @Option(parsing: .unconditional, help: "Passes over the training set.")
    var epochs = 3

    @Option(parsing: .unconditional, help: "Sequences per step.")
    var batchSize = 32

    @Option(parsing: .unconditional, help: "Peak learning rate.")
    var lr: Float = 2e-5

    @Option(parsing: .unconditional, help: "Tokens per sequence at most ([CLS] and [SEP] included).")
    var maxLength = 128

    @Option(parsing: .unconditional, help: "Fraction of the steps spent warming the learning rate up.")
    var warmupFraction = 0.1

    @Option(parsing: .unconditional, help: "Seed of the new head and of the shuffling.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Use only the first N training examples (quick runs).")
    var limit: Int?

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceOption = .auto

    @Flag(help: "Replace --out if it exists.")
    var force = false

    func validate() throws {
        guard GLUETask(rawValue: task) != nil else {
            throw ValidationError("--task must be one of \(GLUETask.allCases.map(\.rawValue).joined(separator: ", ")), not '\(task)'")
        }
        guard epochs >= 1, batchSize >= 1 else { throw ValidationError("--epochs and --batch-size must be at least 1") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive finite number, not \(lr)") }
        guard maxLength >= 4 else { throw ValidationError("--max-length must be at least 4, not \(maxLength)") }
        guard (0..<1).contains(warmupFraction) else { throw ValidationError("--warmup-fraction must be in [0, 1), not \(warmupFraction)") }
        guard limit.map({ $0 >= 1 }) ?? true else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let task = GLUETask(rawValue: self.task)!
        if !force, FileManager.default.fileExists(atPath: out) {
            throw ValidationError("\(out) exists; choose another --out or pass --force to replace it")
        }
        guard HuggingFaceImport.isModelFolder(initial) else { throw ValidationError("\(initial) is not a transformers model folder (no config.json there)") }
        let tokenizerPath = initial + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw ValidationError("\(initial) has no tokenizer.json (slope reads BERT's WordPiece from tokenizer.json; save the tokenizer with transformers first)")
        }
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: tokenizerPath)
        guard let classifier = tokenizer.id(of: "[CLS]"), let separator = tokenizer.id(of: "[SEP]") else {
            throw ValidationError("\(tokenizerPath) has no [CLS] or [SEP] token")
        }
        let cpu = try ComputeDevice.make(device).backend
        let (encoder, lacking) = try HuggingFaceEncoderImport.load(folder: initial, dtype: .float32, backend: cpu)
        guard tokenizer.vocabularySize <= encoder.configuration.vocabularySize else {
            throw ValidationError("the tokenizer has \(tokenizer.vocabularySize) tokens, the model's vocabulary \(encoder.configuration.vocabularySize)")
        }
        let wanted: EncoderTaskHead.Task = task.isRegression ? .regression : .classification(labels: task.labels.count)
        let loaded = try HuggingFaceEncoderImport.loadTaskHead(folder: initial, encoder: encoder)
        let head = try loaded.flatMap { $0.task == wanted ? $0 : nil } ?? EncoderTaskHead(task: wanted, encoder: encoder, seed: seed)
        say("slope finetune: \(task.rawValue) from \(initial) on \(cpu.name) (\(encoder.configuration.layers) layers, hidden \(encoder.configuration.hiddenSize)"
            + (loaded?.task == wanted ? ", its \(task.rawValue) head" : ", a new head") + (lacking.isEmpty ? "" : "; pretraining heads not in the folder") + ")")

        func features(_ split: GLUETask.Split) throws -> [(SentencePairFeatures, GLUEExample.Label)] {
            var (examples, skipped) = try GLUEReader.read(task, split: split, folder: data)
            if split == .train, let limit { examples = Array(examples.prefix(limit)) }
            if skipped > 0 { say("  \(split): \(skipped) malformed rows skipped (as GLUE's reference processors skip them)") }
            return try examples.map { example in
                (try SentencePairFeatures(
                    first: tokenizer.encodeWithoutAddedTokens(example.first), second: example.second.map { try tokenizer.encodeWithoutAddedTokens($0) },
                    classifier: classifier, separator: separator, maxLength: maxLength), example.label)
            }
        }
        let train = try features(.train), dev = try features(.dev)
        guard !train.isEmpty, !dev.isEmpty else { throw ValidationError("\(data) has no training or no dev examples for \(task.rawValue)") }
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize, totalSteps = stepsPerEpoch * epochs
        let schedule = try LearningRateSchedule(
            peak: lr, warmupSteps: Int(Double(totalSteps) * warmupFraction), totalSteps: totalSteps, decay: .linear)
        let optimizer = AdamW(
            parameters: encoder.parameters + head.parameters, configuration: .init(learningRate: lr, weightDecay: 0.01), decayScope: .matrices, backend: cpu)
        say("  \(train.count) training and \(dev.count) dev examples; \(epochs) epochs of \(stepsPerEpoch) steps of \(batchSize)")

        var generator = SeededGenerator(seed: seed)
        var step = 0, metrics: [String: Double] = [:], predictions: [String] = []
        for epoch in 1...epochs {
            var order = Array(train.indices)
            order.shuffle(using: &generator)
            var total = 0.0
            for start in stride(from: 0, to: order.count, by: batchSize) {
                let batch = order[start..<min(start + batchSize, order.count)].map { train[$0] }
                let (tokens, types, lengths, sequence) = try padded(batch.map(\.0), cpu)
                let labels = batch.map { example -> Float in
                    switch example.1 {
                    case .classIndex(let index): return Float(index)
                    case .score(let score): return Float(score)
                    }
                }
                total += try head.loss(tokens: tokens, tokenTypes: types, lengths: lengths, batch: batch.count, sequence: sequence, labels: labels)
                try head.backward()
                _ = try clipGradientNorm(parameters: encoder.parameters + head.parameters, sparseWeights: [], maxNorm: 1, backend: cpu)
                try optimizer.step(learningRate: schedule.learningRate(atStep: step))
                try optimizer.zeroGradients()
                step += 1
            }
            (metrics, predictions) = try evaluate(task, head: head, dev: dev, cpu)
            say("epoch \(epoch): train loss \(formatted(total / Double(stepsPerEpoch), digits: 4)); dev "
                + metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value, digits: 4))" }.joined(separator: ", "))
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let encoderJSON = JSONEncoder()
        encoderJSON.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoderJSON.encode(["task": ["name": task.rawValue], "dev": metrics.mapValues { "\($0)" }]), to: out + "/metrics.json")
        try AtomicFile.write(Data((["index\tprediction"] + predictions.enumerated().map { "\($0)\t\($1)" }).joined(separator: "\n").utf8 + [10]),
                             to: out + "/predictions-dev.tsv")
        try HuggingFaceEncoderExport.write(encoder, head: head, to: out + "/model")
        try FileManager.default.copyItem(atPath: tokenizerPath, toPath: out + "/model/tokenizer.json")
        say("wrote \(out)/metrics.json, predictions-dev.tsv and model/ (a transformers BertForSequenceClassification folder)")
    }

    /// A batch padded to its longest sequence: token ids, token types, each sequence's length, the padded length.
    private func padded(_ batch: [SentencePairFeatures], _ backend: any Backend) throws -> (Tensor, Tensor, [Int], Int) {
        let sequence = batch.map(\.ids.count).max()!
        let ids = batch.flatMap { $0.ids + [Int32](repeating: 0, count: sequence - $0.ids.count) }
        let types = batch.flatMap { $0.tokenTypes + [Int32](repeating: 0, count: sequence - $0.tokenTypes.count) }
        return (try backend.tensor(ids, shape: [ids.count]), try backend.tensor(types, shape: [types.count]), batch.map(\.ids.count), sequence)
    }

    /// The dev metrics GLUE reports for the task, and each example's prediction as its label (a score for STS-B).
    private func evaluate(
        _ task: GLUETask, head: EncoderTaskHead, dev: [(SentencePairFeatures, GLUEExample.Label)], _ backend: any Backend
    ) throws -> ([String: Double], [String]) {
        var scores: [[Float]] = []
        for start in stride(from: 0, to: dev.count, by: batchSize) {
            let batch = Array(dev[start..<min(start + batchSize, dev.count)])
            let (tokens, types, lengths, sequence) = try padded(batch.map(\.0), backend)
            let logits = try backend.floats(head.logits(tokens: tokens, tokenTypes: types, lengths: lengths, batch: batch.count, sequence: sequence))
            let width = logits.count / batch.count
            scores += (0..<batch.count).map { Array(logits[($0 * width)..<(($0 + 1) * width)]) }
        }
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
