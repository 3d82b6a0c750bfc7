/// BERT's pretraining examples, as Google's `create_pretraining_data.py` (which NVIDIA's recipe runs) makes them:
/// sentence pairs `[CLS] A [SEP] B [SEP]` cut from documents, B the real continuation or (half the time) text from
/// another document, then 15% of the tokens chosen for prediction — 80% of those replaced by `[MASK]`, 10% by a
/// random token, 10% kept. Masking once when the data is made is "static" masking; calling ``mask(_:using:)``
/// anew each epoch is "dynamic".
public struct MaskedLanguageModeling: Sendable {
    public struct SpecialIDs: Sendable, Equatable {
        public var classifier: Int32, separator: Int32, mask: Int32, padding: Int32
        public init(classifier: Int32, separator: Int32, mask: Int32, padding: Int32) {
            (self.classifier, self.separator, self.mask, self.padding) = (classifier, separator, mask, padding)
        }

        /// `[CLS]`, `[SEP]`, `[MASK]` and `[PAD]` in a WordPiece vocabulary.
        public init(_ tokenizer: WordPieceTokenizer) throws {
            func id(_ token: String) throws -> Int32 {
                guard let id = tokenizer.id(of: token) else { throw MaskedLanguageModelingError.missingToken(token) }
                return id
            }
            self.init(classifier: try id("[CLS]"), separator: try id("[SEP]"), mask: try id("[MASK]"), padding: try id("[PAD]"))
        }
    }

    /// One example: `length` real tokens, then padding to the configured length.
    public struct Example: Sendable, Equatable {
        public var inputIDs: [Int32]
        /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, 0 for padding.
        public var tokenTypes: [Int32]
        /// The original token where a prediction is made, ``MaskedLanguageModeling/ignoredLabel`` elsewhere.
        public var labels: [Int32]
        public var length: Int
        /// Whether B was taken from another document (next-sentence prediction's label 1).
        public var isRandomNext: Bool
    }

    /// Label of positions that are not predicted (PyTorch's cross-entropy default ignore index).
    public static let ignoredLabel: Int32 = -100

    public var special: SpecialIDs
    public var vocabularySize: Int
    /// Tokens per example, special tokens and padding included (128 then 512 in NVIDIA's two phases).
    public var sequenceLength: Int
    public var maskProbability = 0.15
    /// At most this many predictions per example (NVIDIA: 20 at length 128, 80 at 512).
    public var maxPredictions: Int
    /// Examples made shorter than the length on purpose, so the model also sees short inputs (Google: 0.1).
    public var shortSequenceProbability = 0.1

    public init(special: SpecialIDs, vocabularySize: Int, sequenceLength: Int, maxPredictions: Int) throws {
        guard sequenceLength >= 5 else { throw MaskedLanguageModelingError.invalid("sequence length must be ≥ 5, not \(sequenceLength)") }
        guard maxPredictions >= 1, vocabularySize >= 1 else {
            throw MaskedLanguageModelingError.invalid("need at least one prediction per example and a vocabulary")
        }
        (self.special, self.vocabularySize, self.sequenceLength, self.maxPredictions) = (special, vocabularySize, sequenceLength, maxPredictions)
    }

    /// Chooses `min(maxPredictions, max(1, round(15% of the real tokens)))` positions that are not special tokens,
    /// in random order, and replaces each as BERT does; returns the inputs and the labels.
    public func mask<G: RandomNumberGenerator>(_ ids: [Int32], using generator: inout G) -> (inputs: [Int32], labels: [Int32]) {
        let specials: Set<Int32> = [special.classifier, special.separator, special.padding]
        var candidates = ids.indices.filter { !specials.contains(ids[$0]) }
        candidates.shuffle(using: &generator)
        let count = min(maxPredictions, max(1, Int((Double(candidates.count) * maskProbability).rounded())), candidates.count)
        var inputs = ids
        var labels = [Int32](repeating: Self.ignoredLabel, count: ids.count)
        for position in candidates.prefix(count) {
            labels[position] = ids[position]
            let draw = Double.random(in: 0..<1, using: &generator)
            if draw < 0.8 {
                inputs[position] = special.mask
            } else if draw < 0.9 {
                inputs[position] = Int32.random(in: 0..<Int32(vocabularySize), using: &generator)
            }  // else: kept as it is
        }
        return (inputs, labels)
    }

    /// One sentence pair before masking: `[CLS] A [SEP] B [SEP]` unpadded, its token types, and whether B was taken
    /// from another document. Masking it later (once: static, each epoch anew: dynamic) gives an ``Example``.
    public struct Instance: Sendable, Equatable {
        public var ids: [Int32]
        public var tokenTypes: [Int32]
        public var isRandomNext: Bool

        public init(ids: [Int32], tokenTypes: [Int32], isRandomNext: Bool) {
            (self.ids, self.tokenTypes, self.isRandomNext) = (ids, tokenTypes, isRandomNext)
        }
    }

    /// Sentence-pair examples from `documents` (each a list of tokenized sentences), masked: Google's
    /// `create_instances_from_document` for every document in turn, then ``masked(_:using:)``.
    public func examples<G: RandomNumberGenerator>(documents: [[[Int32]]], using generator: inout G) -> [Example] {
        instances(documents: documents, using: &generator).map { masked($0, using: &generator) }
    }

    /// The sentence pairs of `documents`, unmasked. A document needs two sentences or more to make a pair with a real
    /// continuation; a one-document corpus makes no random-next pairs.
    public func instances<G: RandomNumberGenerator>(documents: [[[Int32]]], using generator: inout G) -> [Instance] {
        let maxTokens = sequenceLength - 3  // [CLS], [SEP], [SEP]
        var instances: [Instance] = []
        for (index, document) in documents.enumerated() {
            var target = maxTokens
            if Double.random(in: 0..<1, using: &generator) < shortSequenceProbability { target = Int.random(in: 2...maxTokens, using: &generator) }
            var chunk: [[Int32]] = []
            var chunkLength = 0
            var i = 0
            while i < document.count {
                chunk.append(document[i])
                chunkLength += document[i].count
                if i == document.count - 1 || chunkLength >= target, !chunk.isEmpty {
                    let aEnd = chunk.count >= 2 ? Int.random(in: 1..<chunk.count, using: &generator) : 1
                    var a = Array(chunk[..<aEnd].joined())
                    var b: [Int32] = []
                    var isRandomNext = false
                    if chunk.count == 1 || (documents.count > 1 && Double.random(in: 0..<1, using: &generator) < 0.5) {
                        if documents.count > 1 {
                            isRandomNext = true
                            var other = index
                            while other == index { other = Int.random(in: 0..<documents.count, using: &generator) }
                            let randomDocument = documents[other]
                            var j = Int.random(in: 0..<randomDocument.count, using: &generator)
                            while j < randomDocument.count, b.count < target - a.count {
                                b += randomDocument[j]
                                j += 1
                            }
                            // The unused sentences of this chunk go back to be used next.
                            i -= chunk.count - aEnd
                        }
                    } else {
                        b = Array(chunk[aEnd...].joined())
                    }
                    if !b.isEmpty || documents.count == 1 {
                        Self.truncate(&a, &b, to: maxTokens, using: &generator)
                        if !a.isEmpty, !b.isEmpty { instances.append(instance(a, b, isRandomNext: isRandomNext)) }
                    }
                    chunk = []
                    chunkLength = 0
                }
                i += 1
            }
        }
        return instances
    }

    /// Removes tokens from the longer of the two, from its front or back at random, until both fit.
    static func truncate<G: RandomNumberGenerator>(_ a: inout [Int32], _ b: inout [Int32], to total: Int, using generator: inout G) {
        while a.count + b.count > total {
            if a.count > b.count {
                if Bool.random(using: &generator) { a.removeFirst() } else { a.removeLast() }
            } else {
                if Bool.random(using: &generator) { b.removeFirst() } else { b.removeLast() }
            }
        }
    }

    func instance(_ a: [Int32], _ b: [Int32], isRandomNext: Bool) -> Instance {
        Instance(
            ids: [special.classifier] + a + [special.separator] + b + [special.separator],
            tokenTypes: [Int32](repeating: 0, count: a.count + 2) + [Int32](repeating: 1, count: b.count + 1), isRandomNext: isRandomNext)
    }

    /// `instance` with its predictions chosen and replaced (``mask(_:using:)``), padded to the sequence length.
    public func masked<G: RandomNumberGenerator>(_ instance: Instance, using generator: inout G) -> Example {
        let (inputs, labels) = mask(instance.ids, using: &generator)
        let padding = max(0, sequenceLength - instance.ids.count)
        return Example(
            inputIDs: inputs + [Int32](repeating: special.padding, count: padding),
            tokenTypes: instance.tokenTypes + [Int32](repeating: 0, count: padding),
            labels: labels + [Int32](repeating: Self.ignoredLabel, count: padding), length: instance.ids.count,
            isRandomNext: instance.isRandomNext)
    }
}

public enum MaskedLanguageModelingError: Error, Equatable, CustomStringConvertible {
    case missingToken(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .missingToken(let token): "the vocabulary has no \(token) token, which BERT's pretraining examples need"
        case .invalid(let reason): "masked language modeling: \(reason)"
        }
    }
}
