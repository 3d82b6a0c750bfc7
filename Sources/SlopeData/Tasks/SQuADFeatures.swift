/// A SQuAD question as BERT's `run_squad` feeds it: the context split at whitespace into words, each word into
/// WordPiece tokens, and windows of at most `maxLength` tokens `[CLS] question [SEP] context window [SEP]`, each
/// window `stride` context tokens after the last; per token its context characters (a sub-token gets its word's)
/// and whether this window gives it the most context of all; for training, the answer's token positions in the
/// window (both 0, `[CLS]`, where the answer is outside it).
public struct SQuADFeature: Sendable, Equatable {
    public var ids: [Int32]
    public var tokenTypes: [Int32]
    /// Per token, its characters in the context (Unicode scalar offsets); nil for the question and special tokens.
    public var offsets: [Range<Int>?]
    public var isMaxContext: [Bool]
    public var startPosition: Int
    public var endPosition: Int
}

public enum SQuADFeatures {
    /// The windows of `question` (see ``SQuADFeature``); its first gold answer gives the training positions.
    public static func make(
        _ question: SQuADQuestion, tokenizer: WordPieceTokenizer, maxLength: Int = 384, stride: Int = 128, maxQueryLength: Int = 64
    ) throws -> [SQuADFeature] {
        guard let classifier = tokenizer.id(of: "[CLS]"), let separator = tokenizer.id(of: "[SEP]") else {
            throw MaskedLanguageModelingError.missingToken("[CLS] or [SEP]")
        }
        // Words of the context at whitespace, as run_squad splits them, with their characters.
        let scalars = Array(question.context.unicodeScalars)
        var words: [Range<Int>] = [], wordOfCharacter = [Int](repeating: 0, count: scalars.count)
        var start: Int? = nil
        for (index, scalar) in scalars.enumerated() {
            let space = scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n" || scalar.value == 0x202F
            if space {
                if let first = start { words.append(first..<index); start = nil }
            } else if start == nil {
                start = index
            }
            wordOfCharacter[index] = space ? max(words.count - 1, 0) : words.count
        }
        if let first = start { words.append(first..<scalars.count) }
        // Each word's WordPiece tokens, and where each word's first token is.
        var contextTokens: [Int32] = [], tokenWord: [Int] = [], firstToken: [Int] = []
        for (index, word) in words.enumerated() {
            firstToken.append(contextTokens.count)
            let pieces = try tokenizer.encodeWithoutAddedTokens(String(String.UnicodeScalarView(scalars[word])))
            contextTokens += pieces
            tokenWord += [Int](repeating: index, count: pieces.count)
        }
        firstToken.append(contextTokens.count)
        let query = Array(try tokenizer.encodeWithoutAddedTokens(question.question).prefix(maxQueryLength))
        let windowLength = maxLength - query.count - 3
        guard windowLength >= 1 else {
            throw MaskedLanguageModelingError.invalid("a maximum length of \(maxLength) leaves no room for the context after a \(query.count)-token question")
        }
        // The answer's tokens: the first token of its first word to the last token of its last word.
        var answerTokens: ClosedRange<Int>? = nil
        if let answer = question.answers.first, !scalars.isEmpty {
            let length = answer.text.unicodeScalars.count
            let (first, last) = (min(max(answer.start, 0), scalars.count - 1), min(max(answer.start + length - 1, 0), scalars.count - 1))
            let (startWord, endWord) = (wordOfCharacter[first], wordOfCharacter[last])
            if startWord < words.count, endWord < words.count, firstToken[startWord] < firstToken[endWord + 1] {
                answerTokens = firstToken[startWord]...(firstToken[endWord + 1] - 1)
            }
        }
        // Windows `stride` tokens apart until the context is covered.
        var windows: [Range<Int>] = []
        var offset = 0
        repeat {
            let length = min(contextTokens.count - offset, windowLength)
            windows.append(offset..<(offset + length))
            if offset + length >= contextTokens.count { break }
            offset += min(length, stride)
        } while true
        /// run_squad's _check_is_max_context: the window where the token has the most context on its shorter side.
        func isMaxContext(_ window: Int, _ position: Int) -> Bool {
            var best: (score: Double, window: Int)? = nil
            for (index, span) in windows.enumerated() where span.contains(position) {
                let score = Double(min(position - span.lowerBound, span.upperBound - 1 - position)) + 0.01 * Double(span.count)
                if best == nil || score > best!.score { best = (score, index) }
            }
            return best?.window == window
        }
        let prefix = 2 + query.count  // [CLS] question [SEP]
        return windows.enumerated().map { index, span in
            let ids = [classifier] + query + [separator] + contextTokens[span] + [separator]
            let types = [Int32](repeating: 0, count: prefix) + [Int32](repeating: 1, count: span.count + 1)
            let offsets: [Range<Int>?] = [Range<Int>?](repeating: nil, count: prefix) + span.map { words[tokenWord[$0]] } + [nil]
            let maxContext = [Bool](repeating: false, count: prefix) + span.map { isMaxContext(index, $0) } + [false]
            var (startPosition, endPosition) = (0, 0)
            if let answer = answerTokens, span.contains(answer.lowerBound), span.contains(answer.upperBound) {
                (startPosition, endPosition) = (prefix + answer.lowerBound - span.lowerBound, prefix + answer.upperBound - span.lowerBound)
            }
            return SQuADFeature(ids: ids, tokenTypes: types, offsets: offsets, isMaxContext: maxContext, startPosition: startPosition, endPosition: endPosition)
        }
    }
}
