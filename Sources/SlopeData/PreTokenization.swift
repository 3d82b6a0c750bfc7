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

    let steps: [Step]
    /// A space before text that does not start with one (`ByteLevel`'s `add_prefix_space`).
    public let addsPrefixSpace: Bool

    /// GPT-2's pre-tokenisation.
    public static let gpt2 = PreTokenization(steps: [.gpt2Words], addsPrefixSpace: false)

    init(steps: [Step], addsPrefixSpace: Bool) {
        self.steps = steps
        self.addsPrefixSpace = addsPrefixSpace
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

    func words(_ text: Substring) -> [Substring] {
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
}
