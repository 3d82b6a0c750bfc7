import FoundationEssentials

/// A transformers `config.json` of a GPT-2, OPT or LLaMA-family model, read into a ``ModelConfiguration``.
/// Every field that would change what the model computes is checked: a variant slope does not implement is
/// refused with the field's name, never approximated.
public struct HuggingFaceConfig: Sendable {
    public enum Architecture: String, Sendable { case gpt2, opt, llama }

    public let architecture: Architecture
    public let configuration: ModelConfiguration
    /// The end-of-sequence id, when the config names one inside the vocabulary.
    public let endOfText: Int32?

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unreadable(path: String, reason: String)
        case unsupported(path: String, what: String)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "cannot read \(path) as a transformers config.json: \(reason)"
            case let .unsupported(path, what):
                return "\(path): \(what); slope imports GPT-2, OPT and LLaMA-family models and BERT encoders as transformers defines them"
            }
        }
    }

    /// The fields read, across the three families (all optional: each family uses its own).
    struct Fields: Decodable {
        var model_type: String?
        var vocab_size: Int?
        // GPT-2
        var n_embd: Int?, n_layer: Int?, n_head: Int?, n_inner: Int?, n_positions: Int?
        var layer_norm_epsilon: Float?, scale_attn_weights: Bool?, scale_attn_by_inverse_layer_idx: Bool?
        // OPT
        var ffn_dim: Int?, word_embed_proj_dim: Int?, do_layer_norm_before: Bool?, enable_bias: Bool?
        var layer_norm_elementwise_affine: Bool?, _remove_final_layer_norm: Bool?
        // shared
        var hidden_size: Int?, num_hidden_layers: Int?, num_attention_heads: Int?, max_position_embeddings: Int?
        var activation_function: String?, tie_word_embeddings: Bool?
        // LLaMA
        var intermediate_size: Int?, num_key_value_heads: Int?, head_dim: Int?, rms_norm_eps: Float?, rope_theta: Float?
        var hidden_act: String?, attention_bias: Bool?, mlp_bias: Bool?, rope_scaling: RopeParameters?
        var rope_parameters: RopeParameters?
        var eos_token_id: TokenIDs?

        struct RopeParameters: Decodable {
            var rope_type: String?
            var type: String?
            var rope_theta: Float?
        }

        /// `eos_token_id` is an id or a list of ids.
        enum TokenIDs: Decodable {
            case ids([Int])
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let one = try? container.decode(Int.self) { self = .ids([one]); return }
                self = .ids((try? container.decode([Int].self)) ?? [])
            }
            var first: Int? { if case .ids(let ids) = self { return ids.first } else { return nil } }
        }
    }

    /// Reads `folder/config.json` (`path` names it in errors).
    public static func read(folder: String) throws -> HuggingFaceConfig {
        let path = folder + "/config.json"
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Failure.unreadable(path: path, reason: "\(error)")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String = "config.json") throws -> HuggingFaceConfig {
        let f: Fields
        do { f = try JSONDecoder().decode(Fields.self, from: data) } catch {
            throw Failure.unreadable(path: path, reason: "\(error)")
        }
        func unsupported(_ what: String) -> Failure { .unsupported(path: path, what: what) }
        func need(_ value: Int?, _ name: String) throws -> Int {
            guard let value, value > 0 else { throw unsupported("no positive \(name)") }
            return value
        }
        if f.model_type == "bert" {
            throw unsupported("model_type 'bert' is an encoder, which `slope finetune` (and HuggingFaceEncoderImport) reads; "
                + "pretrain, eval, generate and serve take decoders")
        }
        guard let type = f.model_type, let architecture = Architecture(rawValue: type) else {
            throw unsupported("model_type \(f.model_type.map { "'\($0)'" } ?? "is missing")")
        }
        let vocabulary = try need(f.vocab_size, "vocab_size")
        func gptActivation(_ name: String?) throws -> Activation {
            switch name ?? "gelu_new" {
            case "relu": return .relu
            // slope's GELU is the tanh approximation, which transformers calls gelu_new (and gelu_pytorch_tanh).
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .gelu
            case let other: throw unsupported("activation_function '\(other)' (slope's GPT MLP has relu and the tanh GELU, gelu_new)")
            }
        }
        let configuration: ModelConfiguration
        switch architecture {
        case .gpt2:
            guard f.scale_attn_weights ?? true, !(f.scale_attn_by_inverse_layer_idx ?? false) else {
                throw unsupported("scale_attn_weights false or scale_attn_by_inverse_layer_idx true (attention scaled otherwise than 1/√d)")
            }
            let hidden = try need(f.n_embd, "n_embd")
            configuration = ModelConfiguration(
                family: .gpt, vocabularySize: vocabulary, contextLength: try need(f.n_positions, "n_positions"), layers: try need(f.n_layer, "n_layer"),
                hiddenSize: hidden, heads: try need(f.n_head, "n_head"), intermediateSize: f.n_inner ?? 4 * hidden,
                activation: try gptActivation(f.activation_function), normEpsilon: f.layer_norm_epsilon ?? 1e-5,
                tiedEmbeddings: true)
            guard f.tie_word_embeddings ?? true else { throw unsupported("tie_word_embeddings false (GPT-2's output layer is the embedding)") }
        case .opt:
            let hidden = try need(f.hidden_size, "hidden_size")
            guard (f.word_embed_proj_dim ?? hidden) == hidden else {
                throw unsupported("word_embed_proj_dim \(f.word_embed_proj_dim!) ≠ hidden_size \(hidden) (OPT-350m's projections)")
            }
            guard f.do_layer_norm_before ?? true else { throw unsupported("do_layer_norm_before false (post-LayerNorm, OPT-350m)") }
            guard f.enable_bias ?? true, f.layer_norm_elementwise_affine ?? true, !(f._remove_final_layer_norm ?? false) else {
                throw unsupported("enable_bias false, layer_norm_elementwise_affine false or _remove_final_layer_norm true")
            }
            guard f.tie_word_embeddings ?? true else { throw unsupported("tie_word_embeddings false") }
            configuration = ModelConfiguration(
                family: .gpt, vocabularySize: vocabulary, contextLength: try need(f.max_position_embeddings, "max_position_embeddings"),
                layers: try need(f.num_hidden_layers, "num_hidden_layers"), hiddenSize: hidden,
                heads: try need(f.num_attention_heads, "num_attention_heads"), intermediateSize: try need(f.ffn_dim, "ffn_dim"),
                activation: try gptActivation(f.activation_function ?? "relu"), normEpsilon: 1e-5, tiedEmbeddings: true)
        case .llama:
            guard (f.hidden_act ?? "silu") == "silu" else { throw unsupported("hidden_act '\(f.hidden_act!)' (LLaMA's MLP is SwiGLU with SiLU)") }
            guard !(f.attention_bias ?? false), !(f.mlp_bias ?? false) else { throw unsupported("attention_bias or mlp_bias true") }
            for rope in [f.rope_scaling, f.rope_parameters].compactMap({ $0 }) {
                let kind = rope.rope_type ?? rope.type ?? "default"
                guard kind == "default" else { throw unsupported("RoPE scaling '\(kind)' (slope implements plain RoPE)") }
            }
            let hidden = try need(f.hidden_size, "hidden_size"), heads = try need(f.num_attention_heads, "num_attention_heads")
            guard f.head_dim.map({ $0 * heads == hidden }) ?? true else {
                throw unsupported("head_dim \(f.head_dim!) × \(heads) heads ≠ hidden_size \(hidden)")
            }
            configuration = ModelConfiguration(
                family: .llama, vocabularySize: vocabulary, contextLength: try need(f.max_position_embeddings, "max_position_embeddings"),
                layers: try need(f.num_hidden_layers, "num_hidden_layers"), hiddenSize: hidden, heads: heads,
                keyValueHeads: f.num_key_value_heads ?? heads, intermediateSize: try need(f.intermediate_size, "intermediate_size"),
                normEpsilon: f.rms_norm_eps ?? 1e-6, ropeBase: f.rope_parameters?.rope_theta ?? f.rope_theta ?? 10_000,
                tiedEmbeddings: f.tie_word_embeddings ?? false)
        }
        do { try configuration.validate() } catch { throw unsupported("\(error)") }
        let eos = f.eos_token_id?.first.flatMap { (0..<vocabulary).contains($0) ? Int32($0) : nil }
        return HuggingFaceConfig(architecture: architecture, configuration: configuration, endOfText: eos)
    }
}
