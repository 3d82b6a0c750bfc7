/// The answer a question-answering model gives for a SQuAD question: from each feature's (window of the context,
/// `document stride` apart) start and end logits, the `nBest` highest of each are paired; pairs that end before
/// they start, run longer than `maxAnswerLength` tokens, fall on tokens outside the context (the question, special
/// tokens, padding) or start on a token that another window sees with more context around it are dropped; the
/// remaining spans, scored by start + end logit over all windows, are the n-best answers, as BERT's `run_squad` and
/// Hugging Face's `postprocess_qa_predictions` decode them.
public enum SQuADSpans {
    /// One window of the context, as the model saw it.
    public struct Feature: Sendable {
        public var startLogits: [Float]
        public var endLogits: [Float]
        /// Per token, its characters in the context (Unicode scalar offsets); nil for tokens outside the context.
        public var offsets: [Range<Int>?]
        /// Per token, whether this window gives it the most context of all windows (nil: every token does).
        public var isMaxContext: [Bool]?

        public init(startLogits: [Float], endLogits: [Float], offsets: [Range<Int>?], isMaxContext: [Bool]? = nil) {
            (self.startLogits, self.endLogits, self.offsets, self.isMaxContext) = (startLogits, endLogits, offsets, isMaxContext)
        }
    }

    public struct Answer: Sendable, Equatable {
        public let text: String
        /// Characters of the context (Unicode scalar offsets).
        public let characters: Range<Int>
        public let score: Float
    }

    /// The n-best answers, best first; empty when no window has a valid span.
    public static func answers(context: String, features: [Feature], nBest: Int = 20, maxAnswerLength: Int = 30) -> [Answer] {
        let scalars = Array(context.unicodeScalars)
        var candidates: [Answer] = []
        for feature in features {
            let count = min(feature.startLogits.count, feature.endLogits.count, feature.offsets.count)
            for start in top(feature.startLogits.prefix(count), nBest) {
                for end in top(feature.endLogits.prefix(count), nBest) {
                    guard end >= start, end - start + 1 <= maxAnswerLength, let first = feature.offsets[start], let last = feature.offsets[end],
                          feature.isMaxContext.map({ start < $0.count && $0[start] }) ?? true,
                          first.lowerBound <= last.upperBound, last.upperBound <= scalars.count else { continue }
                    let characters = first.lowerBound..<last.upperBound
                    candidates.append(Answer(
                        text: String(String.UnicodeScalarView(scalars[characters])), characters: characters,
                        score: feature.startLogits[start] + feature.endLogits[end]))
                }
            }
        }
        // Highest score first; among equal scores, the earlier and shorter span (a stable, reproducible order).
        candidates.sort {
            ($0.score, -$0.characters.lowerBound, -$0.characters.count) > ($1.score, -$1.characters.lowerBound, -$1.characters.count)
        }
        return Array(candidates.prefix(nBest))
    }

    /// Indices of the `n` largest values, largest first (ties: the earlier index first).
    static func top(_ values: ArraySlice<Float>, _ n: Int) -> [Int] {
        Array(values.indices.sorted { (values[$0], -$0) > (values[$1], -$1) }.prefix(n))
    }
}
