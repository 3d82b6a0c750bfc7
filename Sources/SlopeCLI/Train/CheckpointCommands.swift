import ArgumentParser
import FoundationEssentials
import SLoPe
import RealModule
import SlopeData

/// A checkpoint (or a transformers model folder) loaded for inference, with the tokenizer and data it was trained with.
struct LoadedCheckpoint {
    let model: TransformerModel
    let state: Checkpoint.State
    let data: DataOptions

    /// Imported models have no training data of their own.
    var isImported: Bool { state.notes["imported_from"] != nil }

    static func load(_ path: String, compute: ComputeDevice) throws -> LoadedCheckpoint {
        if HuggingFaceImport.isModelFolder(path) {
            let source = try PretrainedModel.load(path, dtype: compute.defaultDType, backend: compute.backend)
            let notes = source.importNotes(from: path)
            let state = Checkpoint.State.untrained(source.model, notes: notes)
            return LoadedCheckpoint(model: source.model, state: state, data: DataOptions.fromNotes(notes))
        }
        let file = try SafeTensors.read(path)
        let (model, state) = try Checkpoint.loadModel(file, backend: compute.backend)
        return LoadedCheckpoint(model: model, state: state, data: DataOptions.fromNotes(state.notes))
    }
}

/// `slope eval`: loss and perplexity of a checkpoint on text, a token shard, or its own validation split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss and perplexity of a checkpoint on text or token shards (default: the validation split it was trained with).")

    @Argument(help: "A checkpoint.safetensors written by slope pretrain or import, or a Hugging Face model folder.")
    var checkpoint: String

    @Option(help: "Text file, folder of .txt files, or .tokens shard to evaluate on (default: the run's validation split).")
    var data: String?

    @Option(parsing: .unconditional, help: "Batches to average over (each batch × sequence tokens).")
    var batches = 32

    @Option(parsing: .unconditional, help: "Sequences per batch (default: the training batch size).")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Tokens per sequence (default: the training sequence length).")
    var sequenceLength: Int?

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceOption = .auto

    func validate() throws {
        guard batches >= 1 else { throw ValidationError("--batches must be at least 1, not \(batches)") }
        guard batchSize.map({ $0 >= 1 }) ?? true else { throw ValidationError("--batch-size must be at least 1, not \(batchSize ?? 0)") }
        guard sequenceLength.map({ $0 >= 2 }) ?? true else {
            throw ValidationError("--sequence-length must be at least 2, not \(sequenceLength ?? 0)")
        }
    }

    func run() throws {
        let compute = try ComputeDevice.make(device)
        let loaded = try LoadedCheckpoint.load(checkpoint, compute: compute)
        if loaded.isImported, data == nil {
            throw ValidationError("\(checkpoint) is an imported model with no validation split of its own: pass --data TEXT or a .tokens shard")
        }
        let context = loaded.model.configuration.contextLength
        if let sequenceLength, sequenceLength > context {
            throw ValidationError("--sequence-length \(sequenceLength) exceeds the model's context length \(context)")
        }
        var options = loaded.data
        if let data {
            options.data = data
            options.validationFraction = 0
        }
        // Text is tokenized into a scratch folder that goes away with this command.
        let folder = FileManager.default.temporaryDirectory.path + "/slope-eval-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let loadedData = try options.load(cacheFolder: folder)
        let tokens = data == nil ? loadedData.validation : loadedData.train
        let source = data == nil ? "validation split of \(loadedData.description)" : loadedData.description
        let batch = batchSize ?? loaded.state.options.batchSize
        let sequence = sequenceLength ?? loaded.state.options.sequenceLength
        guard tokens.count >= batch * (sequence + 1) else {
            throw ValidationError("\(source) has \(tokens.count) tokens; one batch needs \(batch * (sequence + 1)) (lower --batch-size or --sequence-length)")
        }
        let loss = try Trainer.meanLoss(of: loaded.model, tokens: tokens, batchSize: batch, sequenceLength: sequence, batches: batches)
        let counted = min(batches, tokens.count / (sequence + 1) / batch) * batch * sequence
        print("checkpoint   \(checkpoint) (step \(loaded.state.step), \(loaded.state.options.sparsity == nil ? "dense" : "SLoPe"))")
        print("data         \(source); \(counted) tokens scored")
        print("loss         \(formatted(loss, digits: 4)) nats/token")
        print("perplexity   \(formatted(Double.exp(loss), digits: 3))")
        if options.tokenizer == "byte" { print("bits/byte    \(formatted(loss / Double.log(2), digits: 4))") }
    }
}

/// `slope generate`: text from a checkpoint with temperature, top-k and top-p sampling and a KV cache; several
/// sequences at once from a prompts file or `--batch` samples of one prompt.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a checkpoint (KV cache; several sequences at once; SLoPe layers merged with their adapters into one sparse GEMM).")

    @Argument(help: "A checkpoint.safetensors written by slope pretrain or import, or a Hugging Face model folder.")
    var checkpoint: String

    @Option(help: "Text to continue.")
    var prompt = "The"

    @Option(help: "A text file of prompts, one per line (blank lines skipped), generated together instead of --prompt.")
    var prompts: String?

    @Option(parsing: .unconditional, help: "Sequences generated at once: with --prompts, the file's prompts this many at a time (default: all); with --prompt, this many samples of it (seeds --seed, --seed + 1, …).")
    var batch: Int?

    @Option(parsing: .unconditional, help: "Tokens to generate at most (per sequence).")
    var maxTokens = 200

    @Option(parsing: .unconditional, help: "Sampling temperature (0: greedy).")
    var temperature = 0.8

    @Option(parsing: .unconditional, help: "Sample only from the K most likely tokens.")
    var topK: Int?

    @Option(parsing: .unconditional, help: "Sample only from the smallest set of tokens whose probability reaches P.")
    var topP: Double?

    @Option(help: "Random seed of the sampler (sequence i of a run draws with seed + i).")
    var seed: UInt64 = 0

    @Flag(help: "Treat each prompt as a user's message: format it with the model's chat template and stop at its end of turn.")
    var chat = false

    @Option(help: "With --chat: the template (a .jinja file or a tokenizer_config.json; default: the one beside the model's tokenizer).")
    var chatTemplate: String?

    @Flag(help: "Keep SLoPe layers and adapters separate instead of merging them for inference.")
    var noMerge = false

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceOption = .auto

    func validate() throws {
        guard chat || chatTemplate == nil else { throw ValidationError("--chat-template goes with --chat") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1, not \(maxTokens)") }
        guard temperature.isFinite, temperature >= 0 else {
            throw ValidationError("--temperature must be a finite number ≥ 0 (0: greedy), not \(temperature)")
        }
        guard topK.map({ $0 >= 1 }) ?? true else { throw ValidationError("--top-k must be at least 1, not \(topK ?? 0)") }
        guard topP.map({ $0 > 0 && $0 <= 1 }) ?? true else { throw ValidationError("--top-p must be in (0, 1], not \(topP ?? 0)") }
        guard batch.map({ $0 >= 1 }) ?? true else { throw ValidationError("--batch must be at least 1, not \(batch ?? 0)") }
    }

    /// The prompts to continue: the file's lines, or --prompt (once, or --batch times).
    func promptTexts() throws -> [String] {
        guard let prompts else { return Array(repeating: prompt, count: batch ?? 1) }
        guard let data = FileManager.default.contents(atPath: prompts) else {
            throw ValidationError("cannot read the prompts file \(prompts)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init).filter {
            !$0.allSatisfy(\.isWhitespace)
        }
        guard !lines.isEmpty else { throw ValidationError("\(prompts) holds no prompt (one per line)") }
        return lines
    }

    func run() throws {
        let texts = try promptTexts()
        let compute = try ComputeDevice.make(device)
        let loaded = try LoadedCheckpoint.load(checkpoint, compute: compute)
        let isSparse = !loaded.model.sparseWeights.isEmpty
        try GenerationPreparation.prepare(loaded.model, merging: !noMerge)
        let (tokenizer, endOfText) = try loaded.data.makeTokenizer()
        // With --chat, each prompt is a user's message through the chat template (which writes its own special tokens).
        var template: ChatTemplate? = nil
        if chat {
            guard let found = try ChatTemplateLookup.find(given: chatTemplate, tokenizer: loaded.data.tokenizerFiles).0 else {
                throw ValidationError("\(checkpoint) has no chat template beside its tokenizer; give one with --chat-template FILE")
            }
            template = found
        }
        let stops = Set([endOfText, template?.endOfTurn(tokenizer)].compactMap { $0 })
        let requests = try texts.enumerated().map { index, text in
            GenerationRequest(
                prompt: try template.map { try tokenizer.encodeWithoutAddedTokens($0.prompt(userMessage: text)) } ?? tokenizer.encode(text),
                maxTokens: maxTokens,
                sampler: try TokenSampler(temperature: temperature, topK: topK, topP: topP, seed: seed &+ UInt64(index)), stopTokens: stops)
        }
        // The continuation is what decoding the prompt and it together adds to the prompt's own decoding: a
        // SentencePiece decoder strips the text's leading space, which must not be the continuation's first.
        func continuation(_ request: GenerationRequest, _ generated: [Int32]) -> String {
            let promptText = tokenizer.decode(request.prompt), reply = generated.filter { !stops.contains($0) }
            let whole = tokenizer.decode(request.prompt + reply)
            return whole.hasPrefix(promptText) ? String(whole.dropFirst(promptText.count)) : tokenizer.decode(reply)
        }
        let clock = ContinuousClock()
        var statistics = (prefillTokens: 0, prefillSeconds: 0.0, decodeTokens: 0, decodeSeconds: 0.0)
        let group = prompts == nil ? requests.count : batch ?? requests.count
        for first in stride(from: 0, to: requests.count, by: group) {
            let part = Array(requests[first..<min(first + group, requests.count)])
            let streams = part.count == 1
            if streams { print(texts[first], terminator: chat ? "\n" : "") }
            var printed = ""
            var generated = [[Int32]](repeating: [], count: part.count)
            var prefilled: ContinuousClock.Instant?
            let start = clock.now
            _ = try loaded.model.generate(part) { index, token in
                if prefilled == nil { prefilled = clock.now }
                generated[index].append(token)
                guard streams else { return }
                // Decode the whole continuation each time: a multi-byte character may span tokens.
                let text = continuation(part[index], generated[index])
                if text.hasPrefix(printed), !text.hasSuffix("\u{FFFD}") {
                    print(text.dropFirst(printed.count), terminator: "")
                    printed = text
                }
            }
            let end = clock.now
            statistics.prefillTokens += part.map(\.prompt.count).reduce(0, +)
            statistics.prefillSeconds += ((prefilled ?? end) - start) / .seconds(1)
            statistics.decodeTokens += generated.map { max($0.count - 1, 0) }.reduce(0, +)
            statistics.decodeSeconds += (end - (prefilled ?? end)) / .seconds(1)
            if streams {
                print("")
            } else {
                for (index, tokens) in generated.enumerated() {
                    print("[\(first + index + 1)] \(texts[first + index])\(continuation(part[index], tokens))\n")
                }
            }
        }
        let total = statistics.decodeTokens + requests.count
        let layers = !isSparse ? "" : noMerge ? ", SLoPe layers unmerged" : ", SLoPe layers merged"
        print("\n[\(total) tokens for \(requests.count) sequence\(requests.count == 1 ? "" : "s") (\(group) at once\(layers)): "
            + "prefill \(statistics.prefillTokens) prompt tokens in \(formatted(statistics.prefillSeconds, digits: 3)) s; "
            + "decode \(formatted(Double(statistics.decodeTokens) / max(statistics.decodeSeconds, 1e-9), digits: 1)) tokens/s]")
    }
}

/// `slope export`: a Hugging Face model folder: weights, config, tokenizer and generation settings.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face model (OPTForCausalLM or LlamaForCausalLM) that transformers loads with its tokenizer.")

    @Argument(help: "A checkpoint.safetensors written by slope pretrain or import.")
    var checkpoint: String

    @Option(help: "Output folder.")
    var out: String

    @Option(help: "Element type of the exported weights (default: as trained).")
    var dtype: DType?

    @Option(help: "Lazy adapters: fold (into the weights, one dense model) or peft (the exact 2:4 base plus a PEFT LoRA adapter).")
    var adapter: HuggingFaceExport.Adapters = .fold

    @Flag(help: "Write into an --out folder that already has files (the files export writes are replaced).")
    var force = false

    func run() throws {
        // Never over a training checkpoint, and into a folder with files only when asked.
        let target = URL(fileURLWithPath: out).appendingPathComponent("model.safetensors").standardizedFileURL.path
        if target == URL(fileURLWithPath: checkpoint).standardizedFileURL.path {
            throw ValidationError("--out \(out) would write model.safetensors over the checkpoint being exported; choose another folder")
        }
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        if !force, !existing.isEmpty {
            throw ValidationError(
                "\(out) is not empty (\(existing.sorted().prefix(3).joined(separator: ", "))\(existing.count > 3 ? ", …" : "")); "
                    + "choose an empty or new folder, or pass --force to replace the files export writes there")
        }
        try RunFolder.create(out)
        if let file = try? SafeTensors.read(checkpoint), EncoderCheckpoint.holdsEncoder(file) { return try exportEncoder(file) }
        let loaded = try LoadedCheckpoint.load(checkpoint, compute: ComputeDevice.make(.cpu))
        let (_, endOfText) = try loaded.data.makeTokenizer()
        let wrotePEFT = try HuggingFaceExport.write(loaded.model, to: out, dtype: dtype, endOfText: endOfText, adapters: adapter)
        let c = loaded.model.configuration
        var files = ["model.safetensors", "config.json"] + (wrotePEFT ? ["adapter_model.safetensors", "adapter_config.json"] : [])
        if let source = loaded.data.tokenizerFiles {
            files += try HuggingFaceTokenizerFiles.write(source, endOfText: endOfText, contextLength: c.contextLength, to: out)
        }
        print("wrote \(out): \(files.joined(separator: ", ")) (\(c.family == .gpt ? "OPTForCausalLM" : "LlamaForCausalLM"), "
            + "\(formatCount(c.parameterCount)) parameters, \(dtype ?? loaded.model.dtype))")
        let adapted = loaded.model.sparseLinears.contains { $0.adapter != nil }
        if !loaded.model.sparseWeights.isEmpty {
            switch (adapted, adapter) {
            case (false, _): print("SLoPe layers are written dense with zeros where pruned (2:4 as trained).")
            case (true, .fold):
                print("SLoPe layers are written with their adapters folded in (W⊙Mr + (L·R)ᵀ/r): dense, no longer 2:4. "
                    + "--adapter peft keeps the 2:4 base and writes the adapters as a PEFT LoRA adapter.")
            case (true, .peft):
                print("SLoPe layers are written 2:4 (zeros where pruned); their adapters are a PEFT LoRA adapter: "
                    + "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out), out).")
            }
        }
        switch loaded.data.tokenizer {
        case "byte": print("The tokenizer is slope's byte tokenizer, as tokenizer.json: token = UTF-8 byte, \(ByteTokenizer.endOfText) = end of text.")
        case MissingTokenizer.name: print("No tokenizer files: the model came without a tokenizer slope reads.")
        default: print("The tokenizer files are copied from \(loaded.data.tokenizer).")
        }
    }
}

extension HuggingFaceExport.Adapters: ExpressibleByArgument {}

extension ExportCommand {
    /// A BERT pretraining checkpoint as a transformers `BertForPreTraining` folder, with the run's tokenizer.json.
    func exportEncoder(_ file: SafeTensors.File) throws {
        guard adapter == .fold else { throw ValidationError("--adapter peft is for decoders; an encoder's adapters are folded into its weights") }
        let (model, state) = try EncoderCheckpoint.loadModel(file, backend: ComputeDevice.make(.cpu).backend)
        try HuggingFaceEncoderExport.write(model, to: out, dtype: dtype)
        var files = ["model.safetensors", "config.json"]
        if let tokenizer = encoderTokenizerPath(checkpoint: checkpoint, notes: state.notes) {
            try? FileManager.default.removeItem(atPath: out + "/tokenizer.json")
            try FileManager.default.copyItem(atPath: tokenizer, toPath: out + "/tokenizer.json")
            files.append("tokenizer.json")
        }
        let c = model.configuration
        print("wrote \(out): \(files.joined(separator: ", ")) (BertForPreTraining, \(c.layers) layers, hidden \(c.hiddenSize), \(dtype ?? model.dtype))")
        if !model.sparseWeights.isEmpty {
            print(model.sparseLinears.contains { $0.adapter != nil }
                ? "SLoPe layers are written with their adapters folded in: dense, no longer 2:4."
                : "SLoPe layers are written dense with zeros where pruned (2:4 as trained). To fine-tune with the masks kept, "
                    + "give the checkpoint itself to slope finetune --init.")
        }
    }
}
