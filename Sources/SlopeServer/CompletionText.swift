import SlopeData

/// A completion's text as its tokens arrive, sent in pieces that never end inside a character or in what may become
/// a stop string, and cut before the first stop string.
///
/// Decoding is incremental (as transformers' streamer and vLLM's detokenizer do it): each token decodes a short window
/// — the tokens since the last piece, after a few earlier ones for context (a SentencePiece decoder strips a leading
/// space at the start of a text, and byte-level tokens may split a character) — and the text is what that window adds
/// to its context's own decoding. So a token costs the same at the 10th and the 10,000th position.
struct CompletionText {
    let tokenizer: any TextTokenizer
    let stops: [String]
    /// Tokens that end a completion without being part of its text (the end of text, a chat model's end of turn).
    let stopTokens: Set<Int32>
    /// Context tokens decoded before the new ones.
    static let contextTokens = 5
    /// The prompt's last few tokens, then the generated ones (stop tokens left out).
    private var tokens: [Int32]
    /// `tokens[contextStart..<readStart]` is the context of the next decode; from `readStart` on, tokens not yet text.
    private var contextStart: Int
    private var readStart: Int
    /// The continuation's text so far as UTF-8, and how many of its bytes have been handed out.
    private var bytes: [UInt8] = []
    private var sent = 0
    /// Where in the text (UTF-8 bytes) a stop string could still begin: everything before was searched.
    private var searched = 0

    init(tokenizer: any TextTokenizer, prompt: [Int32], stops: [String], stopTokens: Set<Int32>) {
        self.tokenizer = tokenizer
        self.stops = stops.filter { !$0.isEmpty }
        self.stopTokens = stopTokens
        tokens = Array(prompt.suffix(Self.contextTokens))
        contextStart = 0
        readStart = tokens.count
    }

    /// Adds a token; returns the text that may be sent now, and whether a stop string ended the completion (the text
    /// is then everything before it).
    mutating func add(_ token: Int32) -> (delta: String, stopped: Bool) {
        if !stopTokens.contains(token) {
            tokens.append(token)
            let context = tokenizer.decode(Array(tokens[contextStart..<readStart]))
            let whole = tokenizer.decode(Array(tokens[contextStart...]))
            // A window ending inside a character waits for the rest of its bytes.
            if !whole.hasSuffix("\u{FFFD}"), whole.utf8.count > context.utf8.count {
                bytes += Self.added(whole, after: context)
                (contextStart, readStart) = (max(readStart - Self.contextTokens, 0), tokens.count)
            }
        }
        if let cut = firstStop() { return (take(upTo: cut, all: true), true) }
        return (take(upTo: bytes.count, all: false), false)
    }

    /// What decoding a window adds to decoding its context alone (UTF-8).
    private static func added(_ whole: String, after context: String) -> [UInt8] {
        whole.hasPrefix(context) ? Array(whole.dropFirst(context.count).utf8) : Array(whole.utf8.dropFirst(context.utf8.count))
    }

    /// Where (UTF-8 bytes) the first stop string starts in `text`, searching only where one could have appeared since
    /// the last search.
    private mutating func firstStop() -> Int? {
        guard !stops.isEmpty else { return nil }
        var first: Int? = nil
        for stop in stops {
            let needle = Array(stop.utf8)
            var start = searched
            while start + needle.count <= bytes.count {
                if bytes[start..<(start + needle.count)].elementsEqual(needle) {
                    first = min(first ?? start, start)
                    break
                }
                start += 1
            }
        }
        let longest = stops.map(\.utf8.count).max() ?? 1
        searched = max(searched, bytes.count - longest + 1)
        return first
    }

    /// Where `needle` first starts in `text`.
    static func firstOccurrence(of needle: String, in text: String) -> String.Index? {
        text.firstRange(of: needle)?.lowerBound
    }

    /// The text not sent yet, once the completion has ended without a stop string (with what a window still held:
    /// bytes of a character that never completed come out as a replacement character).
    mutating func rest() -> String {
        if readStart < tokens.count {
            let context = tokenizer.decode(Array(tokens[contextStart..<readStart]))
            let whole = tokenizer.decode(Array(tokens[contextStart...]))
            bytes += Self.added(whole, after: context)
            readStart = tokens.count
        }
        return take(upTo: bytes.count, all: true)
    }

    /// The text's bytes `sent ..< limit` (what was not sent yet); unless `all`, without a trailing start of a stop
    /// string and never ending inside a character.
    private mutating func take(upTo limit: Int, all: Bool) -> String {
        var end = limit
        if !all {
            let tail = bytes[..<limit].suffix(stops.map(\.utf8.count).max() ?? 0)
            let held = stops.map { stop in
                let needle = Array(stop.utf8)
                return (1..<max(needle.count, 1)).reversed().first { length in
                    length <= tail.count && tail.suffix(length).elementsEqual(needle.prefix(length))
                } ?? 0
            }.max() ?? 0
            end -= held
            // Never split a character: back up to a UTF-8 boundary.
            while end > sent, end < bytes.count, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        }
        guard end > sent else { return "" }
        let delta = String(decoding: bytes[sent..<end], as: UTF8.self)
        sent = end
        return delta
    }
}
