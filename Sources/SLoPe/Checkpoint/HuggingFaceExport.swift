import FoundationEssentials
import SlopeData

/// Writes a model as a dense Hugging Face checkpoint (`model.safetensors` + `config.json`) that
/// transformers loads as `OPTForCausalLM` (GPT family) or `LlamaForCausalLM`.
///
/// SLoPe weights are written dense (W⊙Mr, zeros at pruned positions) with any adapter folded in:
/// `W' = W⊙Mr + (L·R)ᵀ/r`, which computes exactly what the adapted layer does.
public enum HuggingFaceExport {
    public static func write(_ model: TransformerModel, to folder: String, dtype: DType? = nil, endOfText: Int32? = nil) throws {
        let backend = model.backend
        let outputType = dtype ?? model.dtype
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Each tensor is cast (and SLoPe weights decompressed, adapters folded) only when the writer reaches it.
        var records: [SafeTensors.Record] = []
        let adapterNames = Set(model.sparseLinears.flatMap { $0.adapter?.parameters.map(\.name) ?? [] })
        for parameter in model.parameters where !adapterNames.contains(parameter.name) {
            let value = parameter.value
            records.append(SafeTensors.record(parameter.name, dtype: outputType, shape: value.shape, backend: backend) {
                try backend.cast(value, to: outputType)
            })
        }
        for layer in model.sparseLinears {
            let shape = [layer.weight.outFeatures, layer.weight.inFeatures]
            records.append(SafeTensors.record(layer.weight.name, dtype: outputType, shape: shape, backend: backend) {
                var dense = try layer.weight.prunedDense()
                if let adapter = layer.adapter {
                    // (L·R)ᵀ = Rᵀ·Lᵀ, [dout, din], scaled by 1/r.
                    let product = try backend.gemm(
                        adapter.up.value, adapter.down.value, transposeA: true, transposeB: true, alpha: adapter.scale, beta: 0, into: nil,
                        bias: nil)
                    dense = try backend.add(dense, product)
                }
                return try backend.cast(dense, to: outputType)
            })
        }
        records.sort { $0.name < $1.name }
        try SafeTensors.write(records, metadata: ["format": "pt"], to: folder + "/model.safetensors")
        let config = try configJSON(model.configuration, dtype: outputType, endOfText: endOfText)
        try AtomicFile.write(Data(config.utf8), to: folder + "/config.json")
    }

    /// transformers' config.json for the model's family.
    public static func configJSON(_ c: ModelConfiguration, dtype: DType, endOfText: Int32?) throws -> String {
        let torchDType: String
        switch dtype {
        case .float32: torchDType = "float32"
        case .bfloat16: torchDType = "bfloat16"
        case .float16: torchDType = "float16"
        default: throw TensorError.unsupportedDType(operation: "export", dtype: dtype)
        }
        let eos = Int(endOfText ?? Int32(c.vocabularySize - 1))
        var fields: [(String, String)]
        switch c.family {
        case .gpt:
            guard c.activation != .silu else {
                throw TensorError.invalidArgument(operation: "export", reason: "OPT has no SiLU MLP; use a LLaMA-family model")
            }
            fields = [
                ("architectures", "[\"OPTForCausalLM\"]"), ("model_type", "\"opt\""),
                ("vocab_size", "\(c.vocabularySize)"), ("hidden_size", "\(c.hiddenSize)"), ("word_embed_proj_dim", "\(c.hiddenSize)"),
                ("num_hidden_layers", "\(c.layers)"), ("num_attention_heads", "\(c.heads)"), ("ffn_dim", "\(c.intermediateSize)"),
                ("max_position_embeddings", "\(c.contextLength)"),
                // slope's GELU is the tanh approximation, which transformers calls gelu_new.
                ("activation_function", c.activation == .relu ? "\"relu\"" : "\"gelu_new\""),
                ("do_layer_norm_before", "true"), ("enable_bias", "true"), ("layer_norm_elementwise_affine", "true"),
                ("dropout", "0.0"), ("attention_dropout", "0.0"), ("activation_dropout", "0.0"), ("layerdrop", "0.0"),
                ("init_std", "0.02"), ("tie_word_embeddings", "true"),
                ("bos_token_id", "\(eos)"), ("eos_token_id", "\(eos)"), ("pad_token_id", "\(eos)"),
            ]
        case .llama:
            fields = [
                ("architectures", "[\"LlamaForCausalLM\"]"), ("model_type", "\"llama\""),
                ("vocab_size", "\(c.vocabularySize)"), ("hidden_size", "\(c.hiddenSize)"), ("intermediate_size", "\(c.intermediateSize)"),
                ("num_hidden_layers", "\(c.layers)"), ("num_attention_heads", "\(c.heads)"), ("num_key_value_heads", "\(c.keyValueHeads)"),
                ("head_dim", "\(c.headDimension)"), ("max_position_embeddings", "\(c.contextLength)"),
                ("rms_norm_eps", "\(c.normEpsilon)"), ("rope_theta", "\(c.ropeBase)"), ("hidden_act", "\"silu\""),
                ("attention_bias", "false"), ("mlp_bias", "false"), ("tie_word_embeddings", "\(c.tiedEmbeddings)"),
                ("bos_token_id", "\(eos)"), ("eos_token_id", "\(eos)"),
            ]
        }
        fields.append(("torch_dtype", "\"\(torchDType)\""))
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}
