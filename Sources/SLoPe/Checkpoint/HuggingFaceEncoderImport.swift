import FoundationEssentials

/// Reads a transformers BERT folder (`BertForPreTraining`, `BertForMaskedLM`, a bare `BertModel`, or a fine-tuned
/// `BertForSequenceClassification` / `BertForQuestionAnswering`, whose head ``loadTaskHead(folder:encoder:)`` reads;
/// config.json and safetensors) as an ``EncoderModel``. Tensor names are slope's own; a bare `BertModel`'s lack the `bert.` prefix,
/// checkpoints converted from TensorFlow name LayerNorm's parameters `gamma`/`beta`. The encoder's tensors must all be
/// there; heads a checkpoint does not have (a masked-LM model has no pooler or next-sentence head) keep their
/// initialisation and are listed in the result.
public enum HuggingFaceEncoderImport {
    /// config.json's BERT fields.
    struct Config: Decodable {
        let model_type: String?
        let vocab_size: Int
        let hidden_size: Int
        let num_hidden_layers: Int
        let num_attention_heads: Int
        let intermediate_size: Int
        let hidden_act: String?
        let max_position_embeddings: Int
        let type_vocab_size: Int?
        let layer_norm_eps: Float?
        let hidden_dropout_prob: Double?
        let attention_probs_dropout_prob: Double?
        let position_embedding_type: String?
        let num_labels: Int?
        let id2label: [String: String]?
        let problem_type: String?
    }

    static func readConfig(folder: String) throws -> Config {
        let path = folder + "/config.json"
        do { return try JSONDecoder().decode(Config.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw HuggingFaceConfig.Failure.unreadable(path: path, reason: "\(error)")
        }
    }

    /// Tensors of the fine-tuning heads (``EncoderTaskHead``), read by ``loadTaskHead(folder:encoder:)``.
    static func isTaskHeadTensor(_ name: String) -> Bool { name.hasPrefix("classifier.") || name.hasPrefix("qa_outputs.") }

    /// The folder's fine-tuning head over `encoder` (`BertForSequenceClassification`: `classifier`, a regression when
    /// it has one label or `problem_type` says so; `BertForQuestionAnswering`: `qa_outputs`), or nil when it has none.
    public static func loadTaskHead(folder: String, encoder: EncoderModel) throws -> EncoderTaskHead? {
        let files = try HuggingFaceImport.tensorFiles(folder: folder)
        let task: EncoderTaskHead.Task
        if files["qa_outputs.weight"] != nil {
            task = .questionAnswering
        } else if let weight = files["classifier.weight"] {
            let config = try readConfig(folder: folder)
            let labels = try weight.entry("classifier.weight").shape.first ?? 0
            let declared = config.num_labels ?? config.id2label?.count ?? labels
            guard declared == labels else {
                throw HuggingFaceImport.Failure.badShape(folder: folder, name: "classifier.weight", expected: [declared, encoder.configuration.hiddenSize], found: [labels])
            }
            task = labels == 1 || config.problem_type == "regression" ? .regression : .classification(labels: labels)
        } else {
            return nil
        }
        let head = try EncoderTaskHead(task: task, encoder: encoder, seed: 0)
        for parameter in head.parameters {
            guard let file = files[parameter.name] else { throw HuggingFaceImport.Failure.missingTensors(folder: folder, names: [parameter.name]) }
            let entry = try file.entry(parameter.name)
            guard entry.shape == parameter.value.shape else {
                throw HuggingFaceImport.Failure.badShape(folder: folder, name: parameter.name, expected: parameter.value.shape, found: entry.shape)
            }
            try file.load(parameter.name, into: parameter.value, backend: encoder.backend)
        }
        return head
    }

    /// The encoder configuration of a BERT config.json.
    public static func configuration(folder: String) throws -> EncoderConfiguration {
        let path = folder + "/config.json"
        let config = try readConfig(folder: folder)
        func unsupported(_ what: String) -> HuggingFaceConfig.Failure { .unsupported(path: path, what: what) }
        guard config.model_type == "bert" else { throw unsupported("model_type \(config.model_type.map { "'\($0)'" } ?? "is missing"); this reader takes BERT") }
        guard (config.position_embedding_type ?? "absolute") == "absolute" else {
            throw unsupported("position_embedding_type '\(config.position_embedding_type!)' (only absolute positions)")
        }
        let activation: Activation
        switch config.hidden_act ?? "gelu" {
        case "gelu": activation = .geluExact
        case "gelu_new", "gelu_pytorch_tanh": activation = .gelu
        case "relu": activation = .relu
        case "tanh": activation = .tanh
        case let other: throw unsupported("hidden_act '\(other)'")
        }
        let encoder = EncoderConfiguration(
            vocabularySize: config.vocab_size, contextLength: config.max_position_embeddings, typeVocabularySize: config.type_vocab_size ?? 2,
            layers: config.num_hidden_layers, hiddenSize: config.hidden_size, heads: config.num_attention_heads,
            intermediateSize: config.intermediate_size, activation: activation, normEpsilon: config.layer_norm_eps ?? 1e-12,
            hiddenDropout: config.hidden_dropout_prob ?? 0.1, attentionDropout: config.attention_probs_dropout_prob ?? 0.1)
        do { try encoder.validate() } catch { throw unsupported("\(error)") }
        return encoder
    }

    /// The model of `folder` in `dtype` on `backend`, and the names of head tensors the folder did not have.
    public static func load(folder: String, dtype: DType, backend: any Backend) throws -> (model: EncoderModel, notInFolder: [String]) {
        let configuration = try configuration(folder: folder)
        let files = try HuggingFaceImport.tensorFiles(folder: folder)
        let model = try EncoderModel(configuration: configuration, dtype: dtype, backend: backend, seed: 0)
        var used = Set<String>(), missing: [String] = [], notInFolder: [String] = []
        /// The stored name of `name`: as it is, without "bert." (a bare BertModel), or with TensorFlow's LayerNorm names.
        func stored(_ name: String) -> String? {
            var candidates = [name]
            if name.hasPrefix("bert.") { candidates.append(String(name.dropFirst(5))) }
            for candidate in candidates where candidate.contains("LayerNorm.") {
                candidates.append(candidate.replacing("LayerNorm.weight", with: "LayerNorm.gamma").replacing("LayerNorm.bias", with: "LayerNorm.beta"))
            }
            return candidates.first { files[$0] != nil }
        }
        for parameter in model.parameters {
            guard let name = stored(parameter.name) else {
                let isHead = parameter.name.hasPrefix("cls.") || parameter.name.hasPrefix("bert.pooler.")
                if isHead { notInFolder.append(parameter.name) } else { missing.append(parameter.name) }
                continue
            }
            let entry = try files[name]!.entry(name)
            guard entry.shape == parameter.value.shape else {
                throw HuggingFaceImport.Failure.badShape(folder: folder, name: name, expected: parameter.value.shape, found: entry.shape)
            }
            try files[name]!.load(name, into: parameter.value, backend: backend)
            used.insert(name)
        }
        guard missing.isEmpty else { throw HuggingFaceImport.Failure.missingTensors(folder: folder, names: missing) }
        // The tied decoder (a copy of the word embeddings, or its bias under another name) and position-id buffers.
        let ignorable: (String) -> Bool = { name in
            name.hasSuffix("position_ids") || name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias"
                || isTaskHeadTensor(name)  // (read by loadTaskHead)
        }
        let unexpected = files.keys.filter { !used.contains($0) && !ignorable($0) }.sorted()
        guard unexpected.isEmpty else { throw HuggingFaceImport.Failure.unexpectedTensors(folder: folder, names: unexpected) }
        return (model, notInFolder)
    }
}
