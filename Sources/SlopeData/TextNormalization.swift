/// tokenizer.json's `normalizer`, for the forms SentencePiece-style tokenizers use (LLaMA 2, Mistral: `Prepend("▁")`
/// and `Replace(" ", "▁")`, alone or in a `Sequence`). Other normalizers (Unicode normalisation forms, lowercasing,
/// regex replacements) are refused by name when the file is read. Like the `tokenizers` library, it works on
/// Unicode scalars, and it runs on each stretch of text between special tokens.
public struct TextNormalization: Sendable, Equatable {
    enum Step: Sendable, Equatable {
        /// Puts the string before non-empty text.
        case prepend(String)
        /// Replaces every occurrence of a string.
        case replace(String, with: String)
    }

    let steps: [Step]

    /// No normalisation.
    public static let none = TextNormalization(steps: [])

    func apply(_ text: String) -> String {
        steps.reduce(text) { text, step in
            switch step {
            case .prepend(let prefix): text.isEmpty ? text : prefix + text
            case .replace(let pattern, let replacement): Self.replacing(pattern, with: replacement, in: text)
            }
        }
    }

    /// Every occurrence of `pattern`'s scalars replaced, left to right without overlaps (String's own replacement
    /// matches whole Characters, so a space followed by a combining mark would not match " ").
    static func replacing(_ pattern: String, with replacement: String, in text: String) -> String {
        let target = Array(pattern.unicodeScalars)
        guard !target.isEmpty else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if i + target.count <= scalars.count, scalars[i..<(i + target.count)].elementsEqual(target) {
                out.append(contentsOf: replacement.unicodeScalars)
                i += target.count
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }
}
