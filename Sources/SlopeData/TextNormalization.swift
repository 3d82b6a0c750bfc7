@_spi(_Unicode) import Swift  // the standard library's own NFC and NFD (no ICU): String's comparison uses them

/// tokenizer.json's `normalizer`: Unicode normalisation to NFC, NFD, NFKC or NFKD, lowercasing, stripping whitespace at
/// the ends, and the forms SentencePiece-style tokenizers use (LLaMA 2, Mistral: `Prepend("▁")` and `Replace(" ", "▁")`),
/// alone or in a `Sequence`; `Replace` with a plain string or a regex (Swift's regex engine, on Unicode scalars, as the
/// library's Oniguruma matches). Like the `tokenizers` library, it works on Unicode scalars, and it runs on each
/// stretch of text between special tokens.
public struct TextNormalization: Sendable, Equatable {
    enum Step: Sendable, Equatable {
        /// Puts the string before non-empty text.
        case prepend(String)
        /// Replaces every occurrence of a string, or every match of a regex.
        case replace(ScalarPattern, with: String)
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

    /// The fields of a tokenizer.json `normalizer` component slope reads (BertNormalizer's for the WordPiece reader).
    struct Component: Decodable {
        let type: String?
        let normalizers: [Component]?
        let strip_left: Bool?
        let strip_right: Bool?
        let prepend: String?
        let pattern: Pattern?
        let content: String?
        let clean_text: Bool?
        let handle_chinese_chars: Bool?
        let strip_accents: Bool?
        let lowercase: Bool?
        struct Pattern: Decodable { let Regex: String?; let String: String? }

        var name: String { type.map { $0 + (normalizers.map { " (" + $0.map(\.name).joined(separator: ", ") + ")" } ?? "") } ?? "?" }
        /// The stages of a `Sequence`, or this component alone.
        var stages: [Component] { type == "Sequence" ? normalizers ?? [] : [self] }
    }

    /// A `normalizer` component (nil: none) as steps; what slope cannot run is refused by name.
    init(_ normalizer: Component?) throws(ComponentRefusal) {
        var steps: [Step] = []
        for stage in normalizer?.stages ?? [] {
            guard let step = try Self.step(stage) else { throw ComponentRefusal("the normalizer \(normalizer?.name ?? "?")") }
            steps.append(step)
        }
        self.init(steps: steps)
    }

    init(steps: [Step]) { self.steps = steps }

    /// A tokenizer.json normalizer stage as a step: `NFC`, `NFD`, `NFKC`, `NFKD`, `Lowercase`, `StripAccents`, `Strip`
    /// (with its `strip_left`/`strip_right`), `Prepend`, `Replace` (a string or a regex pattern and its `content`); nil
    /// for any other type. Throws for a Replace whose regex Swift cannot compile.
    static func step(_ stage: Component) throws(ComponentRefusal) -> Step? {
        switch (stage.type, stage.prepend, stage.content) {
        case ("NFC", _, _): return .nfc
        case ("NFD", _, _): return .nfd
        case ("NFKC", _, _): return .nfkc
        case ("NFKD", _, _): return .nfkd
        case ("Lowercase", _, _): return .lowercase
        case ("StripAccents", _, _): return .removeMarks(nonspacingOnly: false)
        case ("Strip", _, _): return .strip(start: stage.strip_left ?? true, end: stage.strip_right ?? true)
        case ("Prepend", let prefix?, _): return .prepend(prefix)
        case ("Replace", _, let content?):
            if let string = stage.pattern?.String { return .replace(ScalarPattern(literal: string), with: content) }
            guard let regex = stage.pattern?.Regex else { throw ComponentRefusal("a Replace without a pattern") }
            do { return .replace(try ScalarPattern(regex: regex), with: content) } catch {
                throw ComponentRefusal("the Replace pattern \(regex) (\(error))")
            }
        default: return nil
        }
    }

    func apply(_ text: String) -> String {
        steps.reduce(text) { text, step in
            switch step {
            case .prepend(let prefix): text.isEmpty ? text : prefix + text
            case .replace(let pattern, let replacement): pattern.replacing(in: text, with: replacement)
            case .nfc: String(String.UnicodeScalarView(text._nfc))
            case .nfd: String(String.UnicodeScalarView(text._nfd))
            case .nfkc: String(String.UnicodeScalarView(Self.compatibilityMapped(text)._nfc))
            case .nfkd: String(String.UnicodeScalarView(Self.compatibilityMapped(text)._nfd))
            case .lowercase: Self.lowercased(text)
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

    /// Each scalar's full lowercase mapping, assembled as UTF-8 bytes: ASCII by arithmetic, only scalars that change
    /// through their mapping (a String per scalar, and appending to a UnicodeScalarView, ran at ~2.7 MB/s).
    static func lowercased(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                let byte = UInt8(scalar.value)
                bytes.append(byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte)
            } else if scalar.properties.changesWhenLowercased {
                bytes.append(contentsOf: scalar.properties.lowercaseMapping.utf8)
            } else {
                UTF8.encode(scalar) { bytes.append($0) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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

    /// Every occurrence of `pattern`'s scalars replaced, left to right without overlaps (see ``ScalarPattern``).
    static func replacing(_ pattern: String, with replacement: String, in text: String) -> String {
        ScalarPattern(literal: pattern).replacing(in: text, with: replacement)
    }
}
