import FoundationEssentials

/// Writes an ``EncoderModel`` as a transformers `BertForPreTraining` folder (`model.safetensors` + `config.json`), or
/// with a fine-tuning head as `BertForSequenceClassification` / `BertForQuestionAnswering`: slope's tensor names are
/// transformers', SLoPe weights are written dense (W⊙Mr) with any adapters folded in.
public enum HuggingFaceEncoderExport {
    public static func write(_ model: EncoderModel, head: EncoderTaskHead? = nil, to folder: String, dtype: DType? = nil) throws {
        try model.checkWritable("export")
        let backend = model.backend
        let outputType = dtype ?? model.dtype
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var records = HuggingFaceExport.weightRecords(model, foldingAdapters: true, dtype: outputType, backend: backend)
        for parameter in head?.parameters ?? [] {
            let value = parameter.value
            records.append(SafeTensors.record(parameter.name, dtype: outputType, shape: value.shape, backend: backend) { try backend.cast(value, to: outputType) })
        }
        try SafeTensors.write(records, metadata: ["format": "pt"], to: folder + "/model.safetensors")
        try AtomicFile.write(Data(try configJSON(model.configuration, head: head?.task, dtype: outputType).utf8), to: folder + "/config.json")
    }

    /// transformers' BertConfig for `configuration` and the head's task (dropout probabilities as the configuration's, BERT's 0.1 where it records none).
    static func configJSON(_ c: EncoderConfiguration, head: EncoderTaskHead.Task? = nil, dtype: DType) throws -> String {
        let activation: String
        switch c.activation {
        case .geluExact: activation = "gelu"
        case .gelu: activation = "gelu_new"
        case .relu: activation = "relu"
        case .tanh: activation = "tanh"
        case .silu: activation = "silu"
        }
        let torchDType = ["float32": "float32", "bfloat16": "bfloat16", "float16": "float16"][dtype.rawValue] ?? "float32"
        let architecture: String, labels: String
        switch head {
        case nil: (architecture, labels) = ("BertForPreTraining", "")
        case .classification(let count)?: (architecture, labels) = ("BertForSequenceClassification", "\n  \"num_labels\": \(count),")
        case .regression?: (architecture, labels) = ("BertForSequenceClassification", "\n  \"num_labels\": 1,\n  \"problem_type\": \"regression\",")
        case .questionAnswering?: (architecture, labels) = ("BertForQuestionAnswering", "")
        }
        return """
            {
              "architectures": ["\(architecture)"],\(labels)
              "model_type": "bert",
              "vocab_size": \(c.vocabularySize),
              "hidden_size": \(c.hiddenSize),
              "num_hidden_layers": \(c.layers),
              "num_attention_heads": \(c.heads),
              "intermediate_size": \(c.intermediateSize),
              "hidden_act": "\(activation)",
              "max_position_embeddings": \(c.contextLength),
              "type_vocab_size": \(c.typeVocabularySize),
              "layer_norm_eps": \(c.normEpsilon),
              "position_embedding_type": "absolute",
              "hidden_dropout_prob": \(c.hiddenDropout ?? 0.1),
              "attention_probs_dropout_prob": \(c.attentionDropout ?? 0.1),
              "initializer_range": 0.02,
              "pad_token_id": 0,
              "torch_dtype": "\(torchDType)"
            }

            """
    }
}
