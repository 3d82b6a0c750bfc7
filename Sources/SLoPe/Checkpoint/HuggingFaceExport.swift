import FoundationEssentials
import SlopeData

/// Writes a model as a dense Hugging Face checkpoint (`model.safetensors` + `config.json`) that
/// transformers loads as `OPTForCausalLM` (GPT family) or `LlamaForCausalLM`.
///
/// SLoPe weights are written dense (W⊙Mr, zeros at pruned positions). Adapters are either folded in,
/// `W' = W⊙Mr + (L·R)ᵀ/r` (exactly what the adapted layer computes, but no longer 2:4), or written apart as a PEFT
/// LoRA adapter over the exact 2:4 base.
public enum HuggingFaceExport {
    /// What becomes of the lazy low-rank adapters.
    public enum Adapters: String, Sendable, CaseIterable {
        /// Folded into the weights (one dense model, no 2:4 zeros left where an adapter was).
        case fold
        /// The 2:4 base in model.safetensors, the adapters in adapter_config.json + adapter_model.safetensors (PEFT LoRA).
        case peft
    }

    /// Writes the model; returns whether a PEFT adapter was written (only with `.peft` and adapters attached).
    @discardableResult
    public static func write(
        _ model: TransformerModel, to folder: String, dtype: DType? = nil, endOfText: Int32? = nil, adapters: Adapters = .fold
    ) throws -> Bool {
        try model.checkWritable("export")
        let backend = model.backend
        let outputType = dtype ?? model.dtype
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let records = weightRecords(model, foldingAdapters: adapters == .fold, dtype: outputType, backend: backend)
        try SafeTensors.write(records, metadata: ["format": "pt"], to: folder + "/model.safetensors")
        let config = try configJSON(model.configuration, dtype: outputType, endOfText: endOfText)
        try AtomicFile.write(Data(config.utf8), to: folder + "/config.json")
        let adapted = model.sparseLinears.filter { $0.adapter != nil }
        guard adapters == .peft, !adapted.isEmpty else { return false }
        try writePEFT(adapted, dtype: outputType, backend: backend, to: folder)
        return true
    }

    /// Every weight of `model` as dense tensors in `dtype`, sorted by name: its parameters (adapters' aside), and its
    /// SLoPe weights as W⊙Mr, with their adapters folded in (`(L·R)ᵀ/r` added) when asked. Each tensor is cast (and
    /// decompressed, folded) only when the writer reaches it.
    static func weightRecords(
        _ model: some BlockModel & Layer, foldingAdapters: Bool, dtype: DType, backend: any Backend
    ) -> [SafeTensors.Record] {
        var records: [SafeTensors.Record] = []
        let adapterNames = Set(model.sparseLinears.flatMap { $0.adapter?.parameters.map(\.name) ?? [] })
        for parameter in model.parameters where !adapterNames.contains(parameter.name) {
            let value = parameter.value
            records.append(SafeTensors.record(parameter.name, dtype: dtype, shape: value.shape, backend: backend) {
                try backend.cast(value, to: dtype)
            })
        }
        for layer in model.sparseLinears {
            let shape = [layer.weight.outFeatures, layer.weight.inFeatures]
            records.append(SafeTensors.record(layer.weight.name, dtype: dtype, shape: shape, backend: backend) {
                var dense = try layer.weight.prunedDense()
                if let adapter = layer.adapter, foldingAdapters {
                    // (L·R)ᵀ = Rᵀ·Lᵀ, [dout, din], scaled by 1/r.
                    let product = try backend.gemm(
                        adapter.up.value, adapter.down.value, transposeA: true, transposeB: true, alpha: adapter.scale, beta: 0, into: nil,
                        bias: nil)
                    dense = try backend.add(dense, product)
                }
                return try backend.cast(dense, to: dtype)
            })
        }
        return records.sorted { $0.name < $1.name }
    }

    /// PEFT's LoRA layout: lora_A = Lᵀ `[r, in]`, lora_B = Rᵀ `[out, r]`, scaling lora_alpha / r = slope's 1/r; each
    /// adapted module named in full, so PEFT adds adapters exactly where slope had them.
    static func writePEFT(_ layers: [SparseLinear], dtype: DType, backend: any Backend, to folder: String) throws {
        var records: [SafeTensors.Record] = []
        var modules: [String] = []
        var ranks: [String: Int] = [:], alphas: [String: Float] = [:]
        for layer in layers {
            guard let adapter = layer.adapter else { continue }
            let module = String(layer.weight.name.dropLast(".weight".count))
            modules.append(module)
            ranks[module] = adapter.rank
            alphas[module] = adapter.scale * Float(adapter.rank)
            let (down, up) = (adapter.down.value, adapter.up.value)
            records.append(SafeTensors.record("base_model.model.\(module).lora_A.weight", dtype: dtype, shape: [adapter.rank, down.shape[0]], backend: backend) {
                try backend.cast(backend.transpose(down), to: dtype)
            })
            records.append(SafeTensors.record("base_model.model.\(module).lora_B.weight", dtype: dtype, shape: [up.shape[1], adapter.rank], backend: backend) {
                try backend.cast(backend.transpose(up), to: dtype)
            })
        }
        records.sort { $0.name < $1.name }
        try SafeTensors.write(records, metadata: ["format": "pt"], to: folder + "/adapter_model.safetensors")
        let rank = ranks.values.max() ?? 1
        struct Config: Encodable {
            let peft_type = "LORA", task_type = "CAUSAL_LM", bias = "none"
            let r: Int, lora_alpha: Float
            let lora_dropout: Float = 0, fan_in_fan_out = false, inference_mode = true, use_rslora = false
            let target_modules: [String]
            let rank_pattern: [String: Int], alpha_pattern: [String: Float]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let alpha = modules.min().flatMap { alphas[$0] } ?? 1  // slope's scale is 1/r, so alpha is 1 for every module
        let config = Config(
            r: rank, lora_alpha: alpha, target_modules: modules.sorted(),
            rank_pattern: ranks.filter { $0.value != rank }, alpha_pattern: alphas.filter { $0.value != alpha })
        try AtomicFile.write(try encoder.encode(config), to: folder + "/adapter_config.json")
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
        // The real end-of-text id, or none (an ordinary token must not stand in for it).
        let special: (String) -> [(String, String)] = { names in
            guard let endOfText else { return [] }
            return names.split(separator: ",").map { (String($0), "\(endOfText)") }
        }
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
            ] + special("bos_token_id,eos_token_id,pad_token_id")
        case .llama:
            fields = [
                ("architectures", "[\"LlamaForCausalLM\"]"), ("model_type", "\"llama\""),
                ("vocab_size", "\(c.vocabularySize)"), ("hidden_size", "\(c.hiddenSize)"), ("intermediate_size", "\(c.intermediateSize)"),
                ("num_hidden_layers", "\(c.layers)"), ("num_attention_heads", "\(c.heads)"), ("num_key_value_heads", "\(c.keyValueHeads)"),
                ("head_dim", "\(c.headDimension)"), ("max_position_embeddings", "\(c.contextLength)"),
                ("rms_norm_eps", "\(c.normEpsilon)"), ("rope_theta", "\(c.ropeBase)"), ("hidden_act", "\"silu\""),
                ("attention_bias", "false"), ("mlp_bias", "false"), ("tie_word_embeddings", "\(c.tiedEmbeddings)"),
            ] + special("bos_token_id,eos_token_id")
        }
        fields.append(("torch_dtype", "\"\(torchDType)\""))
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}
