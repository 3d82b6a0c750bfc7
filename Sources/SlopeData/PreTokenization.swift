/// How a tokenizer cuts text into words before its model runs: tokenizer.json's `pre_tokenizer`, as the `tokenizers`
/// library runs it. Splitting pre-tokenizers (`Split` with a regex or a string, any behaviour, `invert`;
/// `Whitespace`, `WhitespaceSplit`, `BertPreTokenizer`, `Digits`, `Punctuation`, `CharDelimiterSplit`), alone or in
/// a `Sequence`, then for byte-level BPE the `ByteLevel` step (GPT-2's pattern with `use_regex`, a space before each
/// piece with `add_prefix_space`), or for SentencePiece-style BPE `Metaspace`.
public struct PreTokenization: @unchecked Sendable {  // Regex is immutable once built
    enum Step {
        /// GPT-2's pattern (`ByteLevel` with `use_regex`), by the hand-written scanner.
        case gpt2Words
        /// Each piece cut at the delimiter's matches, which are then kept or dropped by the behaviour.
        case split(Delimiter, Behaviour, invert: Bool)
    }

    /// What a splitting step looks for.
    enum Delimiter {
        /// Every occurrence of a string or match of a regex (on Unicode scalars, as the library's Oniguruma matches).
        case pattern(ScalarPattern)
        /// Every scalar of a class, each a match of its own.
        case scalars(@Sendable (Unicode.Scalar) -> Bool)
        /// Maximal runs of scalars of one class (`Whitespace`: `\w+|[^\w\s]+`); nil: no class, never in a run.
        case runs(@Sendable (Unicode.Scalar) -> Int?)
    }

    /// tokenizer.json's `behavior`: what becomes of a match.
    enum Behaviour: String {
        /// Dropped.
        case removed = "Removed"
        /// A piece of its own.
        case isolated = "Isolated"
        /// Joined to the piece before it.
        case mergedWithPrevious = "MergedWithPrevious"
        /// Joined to the piece after it.
        case mergedWithNext = "MergedWithNext"
        /// A piece of its own, adjacent matches together.
        case contiguous = "Contiguous"
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
    /// A space before text that does not start with one (`ByteLevel`'s `add_prefix_space`): before each piece the
    /// splitting steps made, or, with none, before the text (which ``BPETokenizer`` does itself, before cutting a
    /// large text into pieces to encode in parallel).
    public let addsPrefixSpace: Bool
    let metaspace: Metaspace?

    /// GPT-2's pre-tokenisation.
    public static let gpt2 = PreTokenization(steps: [.gpt2Words], addsPrefixSpace: false)

    init(steps: [Step], addsPrefixSpace: Bool = false, metaspace: Metaspace? = nil) {
        self.steps = steps
        self.addsPrefixSpace = addsPrefixSpace
        self.metaspace = metaspace
    }

    /// GPT-2's pattern alone: texts can be cut at safe newlines and encoded in parallel.
    var isGPT2: Bool {
        if steps.count == 1, case .gpt2Words = steps[0] { return true }
        return false
    }

    /// Whether a splitting step runs before the byte-level mapping (so the prefix space goes before each piece).
    var splitsFirst: Bool {
        steps.contains { if case .split = $0 { true } else { false } }
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
            case .gpt2Words:
                if addsPrefixSpace, splitsFirst {
                    pieces = pieces.map { $0.unicodeScalars.first == " " ? $0 : Substring(" " + $0) }
                }
                pieces = pieces.flatMap { GPT2PreTokenizer.words($0) }
            case let .split(delimiter, behaviour, invert):
                pieces = pieces.flatMap { Self.split($0, at: delimiter, behaviour, invert: invert) }
            }
        }
        return pieces
    }

    // MARK: Splitting, as the library's NormalizedString.split

    /// `piece` cut at the delimiter's matches (or, with `invert`, at the stretches between them), the matches then
    /// kept or joined by the behaviour; empty pieces dropped.
    static func split(_ piece: Substring, at delimiter: Delimiter, _ behaviour: Behaviour, invert: Bool) -> [Substring] {
        var segments = Self.segments(piece, delimiter)
        if invert { segments = segments.map { ($0.range, !$0.isMatch) } }
        var kept: [(range: Range<String.Index>, isMatch: Bool)] = []
        switch behaviour {
        case .removed: kept = segments.filter { !$0.isMatch }
        case .isolated: kept = segments
        case .contiguous:  // adjacent segments alike join (matches, or after `invert` the stretches they became)
            for segment in segments {
                if let last = kept.last, last.isMatch == segment.isMatch {
                    kept[kept.count - 1].range = last.range.lowerBound..<segment.range.upperBound
                } else {
                    kept.append(segment)
                }
            }
        case .mergedWithPrevious:
            var previousMatched = false
            for segment in segments {
                if segment.isMatch, !previousMatched, let last = kept.last {
                    kept[kept.count - 1].range = last.range.lowerBound..<segment.range.upperBound
                } else {
                    kept.append(segment)
                }
                previousMatched = segment.isMatch
            }
        case .mergedWithNext:
            var previousMatched = false
            for segment in segments.reversed() {
                if segment.isMatch, !previousMatched, let last = kept.last {
                    kept[kept.count - 1].range = segment.range.lowerBound..<last.range.upperBound
                } else {
                    kept.append(segment)
                }
                previousMatched = segment.isMatch
            }
            kept.reverse()
        }
        return kept.filter { !$0.range.isEmpty }.map { piece[$0.range] }
    }

    /// The piece as alternating stretches and matches (matches may be adjacent, or empty for a regex), in order.
    static func segments(_ piece: Substring, _ delimiter: Delimiter) -> [(range: Range<String.Index>, isMatch: Bool)] {
        var segments: [(range: Range<String.Index>, isMatch: Bool)] = []
        var last = piece.startIndex
        func match(_ range: Range<String.Index>) {
            if last < range.lowerBound { segments.append((last..<range.lowerBound, false)) }
            segments.append((range, true))
            last = range.upperBound
        }
        let scalars = piece.unicodeScalars
        switch delimiter {
        case .pattern(let pattern):
            for range in pattern.ranges(in: piece) { match(range) }
        case .scalars(let isDelimiter):
            var index = scalars.startIndex
            while index < scalars.endIndex {
                let next = scalars.index(after: index)
                if isDelimiter(scalars[index]) { match(index..<next) }
                index = next
            }
        case .runs(let kind):
            var index = scalars.startIndex
            while index < scalars.endIndex {
                guard let runKind = kind(scalars[index]) else {
                    index = scalars.index(after: index)
                    continue
                }
                var end = scalars.index(after: index)
                while end < scalars.endIndex, kind(scalars[end]) == runKind { end = scalars.index(after: end) }
                match(index..<end)
                index = end
            }
        }
        if last < piece.endIndex { segments.append((last..<piece.endIndex, false)) }
        return segments
    }

    /// Words that each start at an occurrence of `marker` (the `MergedWithNext` behaviour), on scalars.
    static func split(_ text: Substring, before marker: String) -> [Substring] {
        split(text, at: .pattern(ScalarPattern(literal: marker)), .mergedWithNext, invert: false)
    }

    // MARK: tokenizer.json's splitting pre-tokenizers

    /// The fields of a `pre_tokenizer` component slope reads.
    struct Component: Decodable {
        let type: String?
        let pretokenizers: [Component]?
        let pattern: Pattern?
        let behavior: String?
        let invert: Bool?
        let individual_digits: Bool?
        let delimiter: String?
        let add_prefix_space: Bool?
        let use_regex: Bool?
        let replacement: String?
        let prepend_scheme: String?
        let split: Bool?
        struct Pattern: Decodable { let Regex: String?; let String: String? }

        var name: String { type.map { $0 + (pretokenizers.map { " (" + $0.map(\.name).joined(separator: ", ") + ")" } ?? "") } ?? "?" }
        /// The stages of a `Sequence`, or this component alone.
        var stages: [Component] { type == "Sequence" ? pretokenizers ?? [] : [self] }
    }

    /// The steps of splitting pre-tokenizer stages (a `Sequence`'s, or one); any other stage is refused by name.
    static func splittingSteps(_ stages: some Sequence<Component>) throws(ComponentRefusal) -> [Step] {
        var steps: [Step] = []
        for stage in stages {
            guard let more = try splittingSteps(stage) else { throw ComponentRefusal("the pre-tokenizer \(stage.name) here") }
            steps += more
        }
        return steps
    }

    /// A splitting pre-tokenizer's steps; nil for another type (`ByteLevel`, `Metaspace`, …). Throws the reason for
    /// a splitting one slope cannot run (an unknown behaviour, a regex Swift cannot compile).
    static func splittingSteps(_ stage: Component) throws(ComponentRefusal) -> [Step]? {
        switch stage.type {
        case "Split":
            guard let behaviour = Behaviour(rawValue: stage.behavior ?? "") else { throw ComponentRefusal("the Split behaviour \(stage.behavior ?? "none")") }
            let delimiter: Delimiter
            if let pattern = stage.pattern?.Regex {
                do { delimiter = .pattern(try ScalarPattern(regex: pattern)) } catch {
                    throw ComponentRefusal("the Split pattern \(pattern) (\(error))")
                }
            } else if let string = stage.pattern?.String {
                delimiter = .pattern(ScalarPattern(literal: string))
            } else {
                throw ComponentRefusal("a Split without a pattern")
            }
            return [.split(delimiter, behaviour, invert: stage.invert ?? false)]
        case "Whitespace": return [.split(.runs(wordOrSymbol), .removed, invert: true)]
        case "WhitespaceSplit": return [.split(.scalars(isWhitespace), .removed, invert: false)]
        case "BertPreTokenizer":
            return [.split(.scalars(isWhitespace), .removed, invert: false), .split(.scalars(isPunctuation), .isolated, invert: false)]
        case "Digits":
            return [.split(.scalars(isNumeric), stage.individual_digits ?? false ? .isolated : .contiguous, invert: false)]
        case "Punctuation":
            guard let behaviour = Behaviour(rawValue: stage.behavior ?? "Isolated") else { throw ComponentRefusal("the Punctuation behaviour \(stage.behavior ?? "none")") }
            return [.split(.scalars(isPunctuation), behaviour, invert: false)]
        case "CharDelimiterSplit":
            guard let delimiter = stage.delimiter, delimiter.unicodeScalars.count == 1 else { throw ComponentRefusal("a CharDelimiterSplit without one delimiter") }
            return [.split(.pattern(ScalarPattern(literal: delimiter)), .removed, invert: false)]
        default: return nil
        }
    }

    // MARK: Character classes, as the library defines them

    /// ASCII punctuation and the Unicode punctuation categories (BERT's and `Punctuation`'s class).
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII, (33...47).contains(scalar.value) || (58...64).contains(scalar.value) || (91...96).contains(scalar.value)
            || (123...126).contains(scalar.value) { return true }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
             .otherPunctuation: return true
        default: return false
        }
    }

    /// The regex class `\w` as Rust's regex crate has it: Alphabetic, marks, decimal digits, connector punctuation
    /// and Join_Control.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Rust's `char::is_whitespace`: the White_Space property.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.isWhitespace }

    /// Rust's `char::is_numeric`: the Nd, Nl and No categories.
    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    /// `Whitespace`'s runs: word characters (1) or other visible scalars (2); whitespace is in no run.
    static func wordOrSymbol(_ scalar: Unicode.Scalar) -> Int? {
        scalar.properties.isWhitespace ? nil : isWordCharacter(scalar) ? 1 : 2
    }
}

/// Why a tokenizer.json component cannot be run as the library runs it (the readers name it in their error).
struct ComponentRefusal: Error {
    let what: String
    init(_ what: String) { self.what = what }
}
