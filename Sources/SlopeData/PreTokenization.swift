/// How a byte-level BPE tokenizer cuts text into words before merging: tokenizer.json's `pre_tokenizer`, for the
/// forms slope runs as the `tokenizers` library does (`ByteLevel` alone, as GPT-2; or a `Sequence` of `Split`
/// steps with a regex and the `Isolated` behaviour before a `ByteLevel` mapping, as LLaMA 3).
public struct PreTokenization: @unchecked Sendable {  // Regex is immutable once built
    enum Step {
        /// GPT-2's pattern (`ByteLevel` with `use_regex`), by the hand-written scanner.
        case gpt2Words
        /// Every match its own word, and the text between matches too (`Split`, `Isolated`).
        case isolate(Regex<AnyRegexOutput>, pattern: String)
    }

    /// SentencePiece's space handling (`Metaspace`): spaces become `replacement` (▁), which is also put before the
    /// text (`always`, or `first`: only before the text's first stretch, not after a special token), and with
    /// `split` each ▁ starts a new word.
    /// (A class: as an optional struct inside ``BPETokenizer`` it crashed on copy in debug builds of Swift 6.3.1.)
    final class Metaspace: Sendable {
        enum Prepend: String, Sendable { case always, first, never }
        let replacement: String
        let prepend: Prepend
        let split: Bool

        init(replacement: String, prepend: Prepend, split: Bool) {
            (self.replacement, self.prepend, self.split) = (replacement, prepend, split)
        }
    }

    let steps: [Step]
    /// A space before text that does not start with one (`ByteLevel`'s `add_prefix_space`).
    public let addsPrefixSpace: Bool
    let metaspace: Metaspace?

    /// GPT-2's pre-tokenisation.
    public static let gpt2 = PreTokenization(steps: [.gpt2Words], addsPrefixSpace: false)

    init(steps: [Step], addsPrefixSpace: Bool, metaspace: Metaspace? = nil) {
        self.steps = steps
        self.addsPrefixSpace = addsPrefixSpace
        self.metaspace = metaspace
    }

    /// A `Split` pattern compiled as the `tokenizers` library matches it: on Unicode scalars.
    static func isolating(_ pattern: String) throws -> Step {
        .isolate(try Regex(pattern).matchingSemantics(.unicodeScalar), pattern: pattern)
    }

    /// GPT-2's pattern alone: texts can be cut at safe newlines and encoded in parallel.
    var isGPT2: Bool {
        if steps.count == 1, case .gpt2Words = steps[0] { return true }
        return false
    }

    /// `text` as `Metaspace` rewrites it (unchanged without one); `atStart`: the stretch begins the whole text.
    func spacesReplaced(_ text: String, atStart: Bool) -> String {
        guard let metaspace else { return text }
        let replaced = TextNormalization.replacing(" ", with: metaspace.replacement, in: text)
        let prepends = metaspace.prepend == .always || (metaspace.prepend == .first && atStart)
        return prepends && !replaced.unicodeScalars.starts(with: metaspace.replacement.unicodeScalars) ? metaspace.replacement + replaced : replaced
    }

    func words(_ text: Substring) -> [Substring] {
        if let metaspace, metaspace.split { return Self.split(text, before: metaspace.replacement) }
        var pieces = [text]
        for step in steps {
            switch step {
            case .gpt2Words: pieces = pieces.flatMap { GPT2PreTokenizer.words($0) }
            case .isolate(let regex, _):
                pieces = pieces.flatMap { piece -> [Substring] in
                    var out: [Substring] = []
                    var last = piece.startIndex
                    for match in piece.matches(of: regex) where !match.range.isEmpty {
                        if last < match.range.lowerBound { out.append(piece[last..<match.range.lowerBound]) }
                        out.append(piece[match.range])
                        last = match.range.upperBound
                    }
                    if last < piece.endIndex { out.append(piece[last...]) }
                    return out
                }
            }
        }
        return pieces
    }

    /// Words that each start at an occurrence of `marker` (the `MergedWithNext` behaviour), on scalars.
    static func split(_ text: Substring, before marker: String) -> [Substring] {
        let target = Array(marker.unicodeScalars)
        let scalars = text.unicodeScalars
        var words: [Substring] = []
        var start = scalars.startIndex, index = scalars.startIndex
        while index < scalars.endIndex {
            if scalars[index...].starts(with: target), index > start {
                words.append(Substring(scalars[start..<index]))
                start = index
            }
            index = scalars.index(after: index)
        }
        if start < scalars.endIndex { words.append(Substring(scalars[start...])) }
        return words
    }
}
