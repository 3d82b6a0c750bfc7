@_spi(_Unicode) import Swift  // the standard library's own NFC and NFD (no ICU): String's comparison uses them

/// tokenizer.json's `normalizer`: Unicode normalisation to NFC, NFD, NFKC or NFKD, lowercasing, stripping whitespace at
/// the ends, and the forms SentencePiece-style tokenizers use (LLaMA 2, Mistral: `Prepend("▁")` and `Replace(" ", "▁")`),
/// alone or in a `Sequence`. Regex replacements would need a regex engine with the library's dialect; they are refused
/// by name when the file is read. Like the `tokenizers` library, it works on Unicode scalars, and it runs on each
/// stretch of text between special tokens.
public struct TextNormalization: Sendable, Equatable {
    enum Step: Sendable, Equatable {
        /// Puts the string before non-empty text.
        case prepend(String)
        /// Replaces every occurrence of a string.
        case replace(String, with: String)
        /// Canonical composition (NFC) or decomposition (NFD).
        case nfc, nfd
        /// Compatibility composition (NFKC: ﬁ becomes fi, ｶﾞ becomes ガ) or decomposition (NFKD).
        case nfkc, nfkd
        /// Each scalar's full lowercase mapping (İ becomes i + U+0307), without context, as Rust's `char::to_lowercase`.
        case lowercase
        /// White_Space scalars removed from the start and/or the end.
        case strip(start: Bool, end: Bool)
        /// Combining marks removed: every Mark (`StripAccents`), or only nonspacing ones (BERT's accent stripping, after
        /// NFD).
        case removeMarks(nonspacingOnly: Bool)
    }

    let steps: [Step]

    /// No normalisation.
    public static let none = TextNormalization(steps: [])

    /// The Unicode-form, case and whitespace normalizers of tokenizer.json (`NFC`, `NFD`, `NFKC`, `NFKD`, `Lowercase`, `Strip` with its
    /// `strip_left`/`strip_right`) as a step; nil for any other type.
    static func standardStep(_ type: String?, stripLeft: Bool?, stripRight: Bool?) -> Step? {
        switch type {
        case "NFC": .nfc
        case "NFD": .nfd
        case "NFKC": .nfkc
        case "NFKD": .nfkd
        case "Lowercase": .lowercase
        case "Strip": .strip(start: stripLeft ?? true, end: stripRight ?? true)
        default: nil
        }
    }

    func apply(_ text: String) -> String {
        steps.reduce(text) { text, step in
            switch step {
            case .prepend(let prefix): text.isEmpty ? text : prefix + text
            case .replace(let pattern, let replacement): Self.replacing(pattern, with: replacement, in: text)
            case .nfc: String(String.UnicodeScalarView(text._nfc))
            case .nfd: String(String.UnicodeScalarView(text._nfd))
            case .nfkc: String(String.UnicodeScalarView(Self.compatibilityMapped(text)._nfc))
            case .nfkd: String(String.UnicodeScalarView(Self.compatibilityMapped(text)._nfd))
            case .lowercase: String(String.UnicodeScalarView(text.unicodeScalars.lazy.flatMap { $0.properties.lowercaseMapping.unicodeScalars }))
            case .strip(let start, let end): Self.stripping(text, start: start, end: end)
            case .removeMarks(let nonspacingOnly):
                String(String.UnicodeScalarView(text.unicodeScalars.filter { scalar in
                    switch scalar.properties.generalCategory {
                    case .nonspacingMark: false
                    case .spacingMark, .enclosingMark: nonspacingOnly
                    default: true
                    }
                }))
            }
        }
    }

    /// `text` with every scalar that has a compatibility decomposition replaced by its full NFKD form. Canonical
    /// decomposition, reordering and composition are the standard library's NFD/NFC, so NFKD is this then NFD, and
    /// NFKC this then NFC (the mapped scalars are already fully decomposed).
    static func compatibilityMapped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value >= 0xA0 }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value >= 0xA0, let form = compatibilityForms[scalar.value] { out.append(contentsOf: form) } else { out.append(scalar) }
        }
        return String(out)
    }

    /// ``compatibilityTable`` (generated) read once.
    static let compatibilityForms: [UInt32: [Unicode.Scalar]] = {
        var forms: [UInt32: [Unicode.Scalar]] = [:]
        for entry in compatibilityTable.split(whereSeparator: { $0 == ";" || $0 == "\n" }) {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let key = UInt32(parts[0].trimmingPrefix(while: \.isWhitespace), radix: 16) else { continue }
            forms[key] = parts[1].split(separator: " ").compactMap { UInt32($0, radix: 16).flatMap(Unicode.Scalar.init) }
        }
        return forms
    }()

    static func stripping(_ text: String, start: Bool, end: Bool) -> String {
        var scalars = Substring(text).unicodeScalars
        if start { scalars = scalars.drop { $0.properties.isWhitespace } }
        if end, let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) {
            scalars = scalars[...last]
        } else if end {
            scalars = scalars[scalars.endIndex...]
        }
        return String(scalars)
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
