/// SQuAD v1.1's official scoring: an answer is normalised (lower-cased, punctuation removed, the articles a, an
/// and the dropped, whitespace collapsed), exact match and token-level F1 are taken against each gold answer and
/// the best kept, and the means over all questions are reported in percent. A question without a prediction
/// scores 0 on both.
public enum SQuADScore {
    /// The official `normalize_answer`.
    public static func normalize(_ answer: String) -> String {
        let scalars = Array(answer.lowercased().unicodeScalars.filter { !isASCIIPunctuation($0) })
        // `re.sub(r"\b(a|an|the)\b", " ", text)`: a run of word characters that is exactly an article becomes a space.
        var text = String.UnicodeScalarView()
        var index = scalars.startIndex
        while index < scalars.endIndex {
            guard isWordCharacter(scalars[index]) else {
                text.append(scalars[index])
                index += 1
                continue
            }
            var end = index
            while end < scalars.endIndex, isWordCharacter(scalars[end]) { end += 1 }
            let word = String(String.UnicodeScalarView(scalars[index..<end]))
            if word == "a" || word == "an" || word == "the" { text.append(" ") } else { text.append(contentsOf: scalars[index..<end]) }
            index = end
        }
        return String(text).split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    public static func exactMatch(_ prediction: String, _ truth: String) -> Double {
        normalize(prediction) == normalize(truth) ? 1 : 0
    }

    /// Token F1 with each token counted as often as it appears in both (a multiset intersection).
    public static func f1(_ prediction: String, _ truth: String) -> Double {
        let predicted = normalize(prediction).split(separator: " "), gold = normalize(truth).split(separator: " ")
        var counts: [Substring: Int] = [:]
        for token in gold { counts[token, default: 0] += 1 }
        var common = 0
        for token in predicted where counts[token, default: 0] > 0 {
            counts[token]! -= 1
            common += 1
        }
        guard common > 0 else { return 0 }
        let (precision, recall) = (Double(common) / Double(predicted.count), Double(common) / Double(gold.count))
        return 2 * precision * recall / (precision + recall)
    }

    /// Exact match and F1 in percent over `answers` (question id → gold answers), with `predictions` (id → text).
    public static func evaluate(answers: [String: [String]], predictions: [String: String]) -> (exactMatch: Double, f1: Double, unanswered: Int) {
        guard !answers.isEmpty else { return (0, 0, 0) }
        var (exact, f1Total, unanswered) = (0.0, 0.0, 0)
        for (id, truths) in answers {
            guard let prediction = predictions[id] else {
                unanswered += 1
                continue
            }
            exact += truths.map { exactMatch(prediction, $0) }.max() ?? 0
            f1Total += truths.map { f1(prediction, $0) }.max() ?? 0
        }
        let count = Double(answers.count)
        return (100 * exact / count, 100 * f1Total / count, unanswered)
    }

    /// Python's `\w` on text: letters, numbers and the underscore (`str.isalnum()` or "_").
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "_" { return true }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Python's `string.punctuation`: the ASCII punctuation and symbols.
    static func isASCIIPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 33...47, 58...64, 91...96, 123...126: true
        default: false
        }
    }
}
