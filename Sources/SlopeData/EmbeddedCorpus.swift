import RealModule

/// A text corpus the project generates itself, so training needs no download and its result can be judged:
/// sentences built from templates whose words are drawn uniformly and independently. The entropy of the
/// source is known exactly, so the best achievable loss per byte (the corpus floor) is known too.
///
/// Each sentence is `The <adjective> <noun> <verb> the <noun>.` or `A <noun> <verb> <count> <noun>s.`
/// (template chosen uniformly), followed by a space; the words come from fixed lists.
public struct EmbeddedCorpus: Sendable {
    static let adjectives = ["quick", "lazy", "red", "quiet", "bright", "old", "small", "brave"]
    static let nouns = ["fox", "dog", "cat", "bird", "horse", "mouse", "river", "stone", "tree", "cloud", "ship", "lamp"]
    static let verbs = ["sees", "follows", "finds", "likes", "moves", "watches"]
    static let counts = ["two", "three", "four", "five"]

    public init() {}

    /// `sentences` sentences from a seeded generator: the same seed gives the same text.
    public func text(sentences: Int, seed: UInt64) -> String {
        var generator = CorpusGenerator(seed: seed)
        var text = ""
        text.reserveCapacity(sentences * 32)
        for _ in 0..<sentences {
            if generator.next(2) == 0 {
                text += "The \(Self.adjectives[generator.next(Self.adjectives.count)]) \(Self.nouns[generator.next(Self.nouns.count)]) "
                text += "\(Self.verbs[generator.next(Self.verbs.count)]) the \(Self.nouns[generator.next(Self.nouns.count)]). "
            } else {
                text += "A \(Self.nouns[generator.next(Self.nouns.count)]) \(Self.verbs[generator.next(Self.verbs.count)]) "
                text += "\(Self.counts[generator.next(Self.counts.count)]) \(Self.nouns[generator.next(Self.nouns.count)])s. "
            }
        }
        return text
    }

    /// The corpus floor: entropy of the source in nats per byte, E[choice entropy] / E[sentence bytes].
    /// No model can do better on average; a perfect one reaches it.
    public var entropyPerByte: Double {
        func mean(_ words: [String]) -> Double { Double(words.map(\.utf8.count).reduce(0, +)) / Double(words.count) }
        let (a, n, v, c) = (Self.adjectives, Self.nouns, Self.verbs, Self.counts)
        let first = Double.log(Double(a.count)) + 2 * Double.log(Double(n.count)) + Double.log(Double(v.count))
        let second = Double.log(Double(n.count)) * 2 + Double.log(Double(v.count)) + Double.log(Double(c.count))
        // "The " + adj + " " + noun + " " + verb + " the " + noun + ". "
        let firstBytes = 4 + mean(a) + 1 + mean(n) + 1 + mean(v) + 5 + mean(n) + 2
        // "A " + noun + " " + verb + " " + count + " " + noun + "s. "
        let secondBytes = 2 + mean(n) + 1 + mean(v) + 1 + mean(c) + 1 + mean(n) + 3
        let templateChoice = Double.log(2)
        return (templateChoice + (first + second) / 2) / ((firstBytes + secondBytes) / 2)
    }
}

/// SplitMix64: a tiny, stable generator so the corpus text never changes between versions.
struct CorpusGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(bound))
    }
}
