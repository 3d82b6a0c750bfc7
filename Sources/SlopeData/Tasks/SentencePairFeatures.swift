/// A sentence or sentence pair as BERT reads it: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, token types 0 for the
/// first part and 1 for B, at most `maxLength` tokens — the longer sentence loses its last token until it fits, as
/// transformers' `longest_first` truncation does.
public struct SentencePairFeatures: Sendable, Equatable {
    public var ids: [Int32]
    public var tokenTypes: [Int32]

    public init(first: [Int32], second: [Int32]?, classifier: Int32, separator: Int32, maxLength: Int) throws {
        let specials = second == nil ? 2 : 3
        guard maxLength > specials else {
            throw MaskedLanguageModelingError.invalid("a maximum length of \(maxLength) leaves no room beside the \(specials) special tokens")
        }
        var (a, b) = (first, second ?? [])
        while a.count + b.count + specials > maxLength {
            if a.count >= b.count { a.removeLast() } else { b.removeLast() }
        }
        ids = [classifier] + a + [separator]
        tokenTypes = [Int32](repeating: 0, count: ids.count)
        if second != nil {
            ids += b + [separator]
            tokenTypes += [Int32](repeating: 1, count: b.count + 1)
        }
    }
}
