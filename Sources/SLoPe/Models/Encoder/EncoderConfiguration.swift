/// The shape of a BERT-style encoder: learned positions and token types, post-norm blocks with bidirectional
/// attention (GELU with erf, as BERT's), a masked-language-model head tied to the word embeddings, a pooler and a
/// next-sentence head.
public struct EncoderConfiguration: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    /// The longest sequence (the learned position table's rows).
    public var contextLength: Int
    /// Segment ids (`token_type_ids`): 2 in BERT (sentence A and B).
    public var typeVocabularySize: Int
    public var layers: Int
    public var hiddenSize: Int
    public var heads: Int
    public var intermediateSize: Int
    public var activation: Activation
    public var normEpsilon: Float
    /// Dropout after the embeddings, attention and MLP outputs while training (BERT: 0.1; transformers'
    /// `hidden_dropout_prob`); nil or 0: none.
    public var hiddenDropout: Double?
    /// Dropout of the attention probabilities while training (BERT: 0.1; transformers' `attention_probs_dropout_prob`);
    /// nil (checkpoints from before it existed) or 0: none.
    public var attentionDropout: Double?

    public init(
        vocabularySize: Int, contextLength: Int = 512, typeVocabularySize: Int = 2, layers: Int, hiddenSize: Int, heads: Int,
        intermediateSize: Int, activation: Activation = .geluExact, normEpsilon: Float = 1e-12, hiddenDropout: Double? = nil,
        attentionDropout: Double? = nil
    ) {
        self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.typeVocabularySize = typeVocabularySize
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.activation = activation
        self.normEpsilon = normEpsilon
    }

    public var headDimension: Int { hiddenSize / heads }

    /// The dropout probability training uses.
    public var dropoutProbability: Double { hiddenDropout ?? 0 }
    /// The attention-probability dropout training uses.
    public var attentionDropoutProbability: Double { attentionDropout ?? 0 }

    /// BERT-base and BERT-large (uncased WordPiece vocabulary of 30522), and a tiny one for tests and the CPU.
    public static let named: [(name: String, configuration: EncoderConfiguration)] = [
        ("bert-base", EncoderConfiguration(
            vocabularySize: 30_522, layers: 12, hiddenSize: 768, heads: 12, intermediateSize: 3072, hiddenDropout: 0.1, attentionDropout: 0.1)),
        ("bert-large", EncoderConfiguration(
            vocabularySize: 30_522, layers: 24, hiddenSize: 1024, heads: 16, intermediateSize: 4096, hiddenDropout: 0.1, attentionDropout: 0.1)),
        ("tiny-bert", EncoderConfiguration(
            vocabularySize: 30_522, contextLength: 128, layers: 2, hiddenSize: 64, heads: 4, intermediateSize: 256, hiddenDropout: 0.1,
            attentionDropout: 0.1)),
    ]

    public static func named(_ name: String) throws -> EncoderConfiguration {
        guard let found = named.first(where: { $0.name == name }) else {
            throw ModelConfiguration.Failure.invalid("no encoder named '\(name)'; choose one of: \(named.map(\.name).joined(separator: ", "))")
        }
        return found.configuration
    }

    /// Throws if the sizes do not fit together.
    public func validate() throws {
        guard [vocabularySize, contextLength, typeVocabularySize, layers, hiddenSize, heads, intermediateSize].allSatisfy({ $0 > 0 }) else {
            throw ModelConfiguration.Failure.invalid("all encoder sizes must be positive")
        }
        guard hiddenSize % heads == 0 else { throw ModelConfiguration.Failure.invalid("hidden size \(hiddenSize) is not divisible by \(heads) heads") }
        guard normEpsilon > 0 else { throw ModelConfiguration.Failure.invalid("normEpsilon must be positive") }
        guard (0..<1).contains(dropoutProbability) else {
            throw ModelConfiguration.Failure.invalid("hiddenDropout must be in [0, 1), not \(dropoutProbability)")
        }
        guard (0..<1).contains(attentionDropoutProbability) else {
            throw ModelConfiguration.Failure.invalid("attentionDropout must be in [0, 1), not \(attentionDropoutProbability)")
        }
        guard checkedParameterCount != nil else {
            throw ModelConfiguration.Failure.invalid("the encoder's sizes give more parameters than can be counted; one of them is mistyped")
        }
    }

    /// Parameters of the encoder, its MLM head (the decoder tied to the word embeddings), pooler and next-sentence head;
    /// nil on overflow.
    public var checkedParameterCount: Int? {
        let (c, f) = (hiddenSize, intermediateSize)
        func p(_ factors: Int...) -> Int? { CheckedSize.product(factors) }
        func sum(_ terms: Int?...) -> Int? {
            terms.reduce(Optional(0)) { total, term in total.flatMap { t in term.flatMap { CheckedSize.sum(t, $0) } } }
        }
        let embeddings = sum(p(vocabularySize, c), p(contextLength, c), p(typeVocabularySize, c), p(2, c))
        let block = sum(p(4, c, c), p(4, c), p(2, c, f), f, c, p(4, c))
        let head = sum(p(c, c), c, p(2, c), vocabularySize)
        let poolerAndNextSentence = sum(p(c, c), c, p(2, c), 2)
        return sum(embeddings, block.flatMap { p(layers, $0) }, head, poolerAndNextSentence)
    }
}
