import FoundationEssentials
import SlopeCore

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

extension PretrainingDocuments {
    /// Tokenized documents as one stream: each sentence followed by −1, each document by −2 (what a shard stores).
    public static func flatten(_ documents: [[[Int32]]]) -> [Int32] {
        var stream: [Int32] = []
        stream.reserveCapacity(documents.reduce(0) { $0 + $1.reduce(1) { $0 + $1.count + 1 } })
        for document in documents {
            for sentence in document { stream += sentence + [-1] }
            stream.append(-2)
        }
        return stream
    }

    /// The documents of a ``flatten(_:)`` stream; a stream that does not end a document, or holds other negative
    /// values, is refused.
    public static func unflatten(_ stream: [Int32]) throws -> [[[Int32]]] {
        var documents: [[[Int32]]] = [], document: [[Int32]] = [], sentence: [Int32] = []
        for value in stream {
            switch value {
            case -1:
                document.append(sentence)
                sentence = []
            case -2:
                guard sentence.isEmpty else { throw MaskedLanguageModelingError.invalid("a document shard ends a document inside a sentence") }
                documents.append(document)
                document = []
            case ..<0: throw MaskedLanguageModelingError.invalid("a document shard holds \(value), which is no token or marker")
            default: sentence.append(value)
            }
        }
        guard sentence.isEmpty, document.isEmpty else { throw MaskedLanguageModelingError.invalid("a document shard stops inside a document") }
        return documents
    }

    /// The documents `make` tokenizes, kept in `folder` (documents.tokens and documents.json, which names `recipe`:
    /// whatever decides them — the text's files, sizes and dates, the tokenizer) and read back instead while the
    /// recipe is the same. Returns the documents and whether they were read back.
    public static func cached(in folder: String, recipe: String, make: () throws -> [[[Int32]]]) throws -> (documents: [[[Int32]]], reused: Bool) {
        struct Manifest: Codable { let recipe: String; let documents: Int }
        let (shard, manifestPath) = (folder + "/documents.tokens", folder + "/documents.json")
        if let data = FileManager.default.contents(atPath: manifestPath), let manifest = try? JSONDecoder().decode(Manifest.self, from: data),
           manifest.recipe == recipe, let stream = try? TokenShard.read(shard), let documents = try? unflatten(stream),
           documents.count == manifest.documents {
            return (documents, true)
        }
        let documents = try make()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: manifestPath)  // the shard is about to change
        try TokenShard.write(flatten(documents), to: shard)
        try AtomicFile.write(JSONEncoder().encode(Manifest(recipe: recipe, documents: documents.count)), to: manifestPath)
        return (documents, false)
    }
}
