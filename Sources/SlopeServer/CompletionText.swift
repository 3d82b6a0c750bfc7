import SlopeData

/// A completion's text as its tokens arrive: what decoding the prompt and the tokens together adds to the prompt's
/// own decoding (a SentencePiece decoder strips a leading space that must not be lost), sent in pieces that never
/// end inside a character or in what may become a stop string, and cut before the first stop string.
struct CompletionText {
    let tokenizer: any TextTokenizer
    let prompt: [Int32]
    let promptText: String
    let stops: [String]
    /// Tokens that end a completion without being part of its text (the end of text, a chat model's end of turn).
    let stopTokens: Set<Int32>
    private var tokens: [Int32] = []
    /// Characters already handed out.
    private var sent = 0

    init(tokenizer: any TextTokenizer, prompt: [Int32], stops: [String], stopTokens: Set<Int32>) {
        self.tokenizer = tokenizer
        self.prompt = prompt
        promptText = tokenizer.decode(prompt)
        self.stops = stops.filter { !$0.isEmpty }
        self.stopTokens = stopTokens
    }

    /// The whole continuation so far.
    var text: String {
        let generated = tokens.filter { !stopTokens.contains($0) }
        let whole = tokenizer.decode(prompt + generated)
        return whole.hasPrefix(promptText) ? String(whole.dropFirst(promptText.count)) : tokenizer.decode(generated)
    }

    /// Adds a token; returns the text that may be sent now, and whether a stop string ended the completion (the text
    /// is then everything before it).
    mutating func add(_ token: Int32) -> (delta: String, stopped: Bool) {
        tokens.append(token)
        let text = self.text
        if let cut = stops.compactMap({ Self.firstOccurrence(of: $0, in: text) }).min() {
            return (take(String(text[..<cut]), all: true), true)
        }
        return (take(text, all: false), false)
    }

    /// Where `needle` first starts in `text`.
    static func firstOccurrence(of needle: String, in text: String) -> String.Index? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix(needle) { return index }
            index = text.index(after: index)
        }
        return nil
    }

    /// The text not sent yet, once the completion has ended without a stop string.
    mutating func rest() -> String { take(text, all: true) }

    /// The part of `text` past what was sent; unless `all`, without a trailing replacement character (a character
    /// whose bytes have not all come) or a trailing start of a stop string.
    private mutating func take(_ text: String, all: Bool) -> String {
        var end = text.count
        if !all {
            if text.hasSuffix("\u{FFFD}") { end -= 1 }
            let held = stops.map { stop in
                (1..<max(stop.count, 1)).reversed().first { text.dropLast(text.count - end).hasSuffix(stop.prefix($0)) } ?? 0
            }.max() ?? 0
            end -= held
        }
        guard end > sent else { return "" }
        let delta = String(text.dropFirst(sent).prefix(end - sent))
        sent = end
        return delta
    }
}
