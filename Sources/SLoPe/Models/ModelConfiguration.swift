import FoundationEssentials

/// The shape of a decoder-only transformer: a GPT-2/OPT-style or a LLaMA-style model.
///
/// ```swift
/// let config = try ModelConfiguration.named("opt-1.3b")
/// let model = try TransformerModel(configuration: config, backend: cpu, seed: 0)
/// ```
public struct ModelConfiguration: Codable, Equatable, Sendable {
    public enum Family: String, Codable, Sendable, CaseIterable {
        /// OPT / GPT-2: learned positions, LayerNorm, GELU or ReLU MLP, biases, tied embeddings.
        case gpt
        /// LLaMA: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention, no biases.
        case llama
    }

    public var family: Family
    public var vocabularySize: Int
    /// The longest sequence the model can see (learned position table size for `gpt`).
    public var contextLength: Int
    public var layers: Int
    public var hiddenSize: Int
    public var heads: Int
    /// Key/value heads (grouped-query attention); equals `heads` for multi-head attention.
    public var keyValueHeads: Int
    /// The MLP's inner width.
    public var intermediateSize: Int
    /// The MLP nonlinearity of `gpt` models (LLaMA's SwiGLU always uses SiLU).
    public var activation: Activation
    public var normEpsilon: Float
    /// RoPE frequency base (`llama`).
    public var ropeBase: Float
    /// The output projection reuses the token embedding.
    public var tiedEmbeddings: Bool

    public init(
        family: Family, vocabularySize: Int, contextLength: Int, layers: Int, hiddenSize: Int, heads: Int,
        keyValueHeads: Int? = nil, intermediateSize: Int, activation: Activation = .gelu, normEpsilon: Float = 1e-5,
        ropeBase: Float = 10_000, tiedEmbeddings: Bool = true
    ) {
        self.family = family
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.heads = heads
        self.keyValueHeads = keyValueHeads ?? heads
        self.intermediateSize = intermediateSize
        self.activation = family == .llama ? .silu : activation
        self.normEpsilon = normEpsilon
        self.ropeBase = ropeBase
        self.tiedEmbeddings = tiedEmbeddings
    }

    public var headDimension: Int { hiddenSize / heads }
    /// Linear layers have biases in the GPT family only.
    public var hasBias: Bool { family == .gpt }
    /// OPT's learned position table starts at row 2 (rows 0 and 1 are a legacy of its padding scheme).
    public static let positionOffset = 2

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unknownName(String)
        case invalid(String)
        case unreadable(path: String, reason: String)

        public var description: String {
            switch self {
            case .unknownName(let name):
                return "no model named '\(name)'; choose one of: \(ModelConfiguration.names.joined(separator: ", ")), or pass a JSON file"
            case .invalid(let reason): return "invalid model configuration: \(reason)"
            case let .unreadable(path, reason): return "cannot read model configuration \(path): \(reason)"
            }
        }
    }

    /// Throws if the sizes do not fit together.
    public func validate() throws {
        let positive = [vocabularySize, contextLength, layers, hiddenSize, heads, keyValueHeads, intermediateSize].allSatisfy { $0 > 0 }
        guard positive else { throw Failure.invalid("all sizes must be positive") }
        guard hiddenSize % heads == 0 else { throw Failure.invalid("hidden size \(hiddenSize) is not divisible by \(heads) heads") }
        guard heads % keyValueHeads == 0 else {
            throw Failure.invalid("\(heads) query heads are not a multiple of \(keyValueHeads) key/value heads")
        }
        guard family == .gpt || headDimension % 2 == 0 else { throw Failure.invalid("RoPE needs an even head dimension, got \(headDimension)") }
        guard normEpsilon > 0 else { throw Failure.invalid("normEpsilon must be positive") }
        guard checkedParameterCount != nil else {
            throw Failure.invalid(
                "the sizes (vocabulary \(vocabularySize), context \(contextLength), \(layers) layers, hidden \(hiddenSize), "
                    + "intermediate \(intermediateSize)) give more parameters than can be counted; one of them is mistyped or damaged")
        }
    }

    // MARK: Sizes

    /// Parameters by kind (tied embeddings counted once); `Int.max` where the count overflows (``validate()``
    /// refuses such a configuration).
    public var parameterCount: Int { checkedParameterCount ?? .max }

    /// The parameter count, or nil when the sizes are negative or their products overflow (untrusted JSON).
    public var checkedParameterCount: Int? {
        let (c, f, kv) = (hiddenSize, intermediateSize, keyValueHeads * (heads > 0 ? hiddenSize / heads : 0))
        func p(_ factors: Int...) -> Int? { CheckedSize.product(factors) }
        func sum(_ terms: Int?...) -> Int? {
            terms.reduce(Optional(0)) { total, term in total.flatMap { t in term.flatMap { CheckedSize.sum(t, $0) } } }
        }
        let attention = sum(p(c, c, 2), p(c, kv, 2), hasBias ? sum(p(2, c), p(2, kv)) : 0)
        let mlp = family == .gpt ? sum(p(2, c, f), hasBias ? CheckedSize.sum(f, c) : 0) : p(3, c, f)
        let norms = p(family == .gpt ? 4 : 2, c)
        let positions = family == .gpt ? CheckedSize.sum(contextLength, Self.positionOffset).flatMap { p($0, c) } : 0
        let embeddings = sum(p(vocabularySize, c), positions)
        let head = tiedEmbeddings ? 0 : p(vocabularySize, c)
        let perLayer = sum(attention, mlp, norms)
        return sum(perLayer.flatMap { p(layers, $0) }, embeddings, head, p(family == .gpt ? 2 : 1, c))
    }

    /// Training FLOPs per token (forward + backward) at sequence length `sequence`: 6 per weight that
    /// multiplies (all but the position table; the output projection counts once) plus attention's
    /// 12·layers·hidden·sequence, as in PaLM's MFU definition.
    public func trainingFLOPsPerToken(sequence: Int) -> Double {
        let positions = family == .gpt ? (contextLength + Self.positionOffset) * hiddenSize : 0
        let lookupOnly = tiedEmbeddings ? 0 : vocabularySize * hiddenSize  // an untied input table only gathers
        let multiplying = parameterCount - positions - lookupOnly
        return 6 * Double(multiplying) + 12 * Double(layers * hiddenSize * sequence)
    }

    // MARK: Named configurations

    public static let named: [(name: String, configuration: ModelConfiguration)] = {
        func gpt(_ vocab: Int, _ context: Int, _ layers: Int, _ hidden: Int, _ heads: Int, _ activation: Activation) -> ModelConfiguration {
            ModelConfiguration(
                family: .gpt, vocabularySize: vocab, contextLength: context, layers: layers, hiddenSize: hidden, heads: heads,
                intermediateSize: 4 * hidden, activation: activation)
        }
        func llama(_ layers: Int, _ hidden: Int, _ heads: Int, _ kvHeads: Int, _ ffn: Int, tied: Bool) -> ModelConfiguration {
            ModelConfiguration(
                family: .llama, vocabularySize: 128_256, contextLength: 8192, layers: layers, hiddenSize: hidden, heads: heads,
                keyValueHeads: kvHeads, intermediateSize: ffn, ropeBase: 500_000, tiedEmbeddings: tied)
        }
        return [
            // Small enough to train on a laptop CPU in minutes, with the byte tokenizer's 257 tokens.
            ("tiny", gpt(257, 256, 4, 128, 4, .gelu)),
            ("tiny-llama", ModelConfiguration(
                family: .llama, vocabularySize: 257, contextLength: 256, layers: 4, hiddenSize: 128, heads: 4,
                keyValueHeads: 2, intermediateSize: 352)),
            ("gpt2", gpt(50_257, 1024, 12, 768, 12, .gelu)),
            ("gpt2-medium", gpt(50_257, 1024, 24, 1024, 16, .gelu)),
            ("gpt2-large", gpt(50_257, 1024, 36, 1280, 20, .gelu)),
            ("gpt2-xl", gpt(50_257, 1024, 48, 1600, 25, .gelu)),
            ("opt-125m", gpt(50_272, 2048, 12, 768, 12, .relu)),
            ("opt-1.3b", gpt(50_272, 2048, 24, 2048, 32, .relu)),
            ("opt-2.7b", gpt(50_272, 2048, 32, 2560, 32, .relu)),
            ("opt-6.7b", gpt(50_272, 2048, 32, 4096, 32, .relu)),
            ("opt-13b", gpt(50_272, 2048, 40, 5120, 40, .relu)),
            ("opt-30b", gpt(50_272, 2048, 48, 7168, 56, .relu)),
            ("opt-66b", gpt(50_272, 2048, 64, 9216, 72, .relu)),
            ("llama-1b", llama(16, 2048, 32, 8, 8192, tied: true)),
            ("llama-3b", llama(28, 3072, 24, 8, 8192, tied: true)),
            ("llama-8b", llama(32, 4096, 32, 8, 14_336, tied: false)),
        ]
    }()

    public static var names: [String] { named.map(\.name) }

    public static func named(_ name: String) throws -> ModelConfiguration {
        guard let found = named.first(where: { $0.name == name.lowercased() }) else { throw Failure.unknownName(name) }
        return found.configuration
    }

    /// A named configuration, or a JSON file of this type's fields when `nameOrPath` ends in `.json`.
    public static func resolve(_ nameOrPath: String) throws -> ModelConfiguration {
        guard nameOrPath.hasSuffix(".json") else { return try named(nameOrPath) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: nameOrPath)) } catch {
            throw Failure.unreadable(path: nameOrPath, reason: "\(error)")
        }
        return try decode(data, path: nameOrPath)
    }

    /// A configuration from JSON (`path` is for errors), validated: every size checked before it sizes anything.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> ModelConfiguration {
        let configuration: ModelConfiguration
        do { configuration = try JSONDecoder().decode(ModelConfiguration.self, from: data) } catch {
            throw Failure.unreadable(path: path, reason: "not a slope model configuration (\(error))")
        }
        try configuration.validate()
        return configuration
    }
}
