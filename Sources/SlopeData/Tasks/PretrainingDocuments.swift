/// BERT's pretraining text as Google's `create_pretraining_data.py` (and NVIDIA's recipe after it) reads it: one
/// sentence per line, a blank line between documents. Sentence pairs are made within documents (a real
/// continuation) and across them (next-sentence prediction's random B).
public enum PretrainingDocuments {
    /// The documents of `text`: runs of non-blank lines, each line a sentence (surrounding whitespace dropped).
    public static func split(_ text: String) -> [[String]] {
        var documents: [[String]] = []
        var current: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let sentence = line.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
            if sentence.isEmpty {
                if !current.isEmpty { documents.append(current) }
                current = []
            } else {
                current.append(String(sentence))
            }
        }
        if !current.isEmpty { documents.append(current) }
        return documents
    }

    /// The documents' sentences tokenized by `encode`; sentences that give no tokens, and documents left empty, are
    /// dropped.
    public static func tokenize(_ documents: [[String]], _ encode: (String) throws -> [Int32]) rethrows -> [[[Int32]]] {
        try documents.compactMap { document in
            let sentences = try document.map(encode).filter { !$0.isEmpty }
            return sentences.isEmpty ? nil : sentences
        }
    }

    /// The embedded corpus laid out as pretraining text: `sentencesPerDocument` of its sentences per document.
    public static func embedded(sentences: Int, sentencesPerDocument: Int = 8, seed: UInt64 = 2024) -> String {
        let text = EmbeddedCorpus().text(sentences: sentences, seed: seed)
        let lines = text.split(separator: ". ").map { $0.hasSuffix(".") ? String($0) : $0 + "." }
        return stride(from: 0, to: lines.count, by: sentencesPerDocument).map {
            lines[$0..<min($0 + sentencesPerDocument, lines.count)].joined(separator: "\n")
        }.joined(separator: "\n\n")
    }
}
