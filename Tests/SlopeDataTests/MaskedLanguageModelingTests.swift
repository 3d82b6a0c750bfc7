import FoundationEssentials
import SlopeCore
@testable import SlopeData
import XCTest

final class MaskedLanguageModelingTests: XCTestCase {
    let special = MaskedLanguageModeling.SpecialIDs(classifier: 101, separator: 102, mask: 103, padding: 0)

    func testMaskingChoosesFifteenPercentAndReplacesEightyTenTen() throws {
        let mlm = try MaskedLanguageModeling(special: special, vocabularySize: 1000, sequenceLength: 128, maxPredictions: 20)
        let ids: [Int32] = [101] + (0..<100).map { Int32(500 + $0) } + [102]
        var generator = SeededGenerator(seed: 1)
        var (masked, random, kept, total) = (0, 0, 0, 0)
        for _ in 0..<400 {
            let (inputs, labels) = mlm.mask(ids, using: &generator)
            let predicted = labels.indices.filter { labels[$0] != MaskedLanguageModeling.ignoredLabel }
            XCTAssertEqual(predicted.count, 15, "round(15% of 100 real tokens)")
            XCTAssertEqual(labels.first, MaskedLanguageModeling.ignoredLabel, "[CLS] is never predicted")
            XCTAssertEqual(labels.last, MaskedLanguageModeling.ignoredLabel, "[SEP] is never predicted")
            for position in ids.indices {
                if labels[position] == MaskedLanguageModeling.ignoredLabel {
                    XCTAssertEqual(inputs[position], ids[position], "only predicted positions change")
                    continue
                }
                XCTAssertEqual(labels[position], ids[position], "the label is the original token")
                total += 1
                if inputs[position] == 103 { masked += 1 } else if inputs[position] == ids[position] { kept += 1 } else { random += 1 }
            }
        }
        // 6000 predictions: 80/10/10 within a few standard deviations (σ ≈ 0.5% and 0.4%).
        XCTAssertEqual(Double(masked) / Double(total), 0.8, accuracy: 0.02)
        XCTAssertEqual(Double(random) / Double(total), 0.1, accuracy: 0.015, "a random token that happens to be the original counts as kept")
        XCTAssertEqual(Double(kept) / Double(total), 0.1, accuracy: 0.015)
        // The cap and the minimum of one.
        let capped = try MaskedLanguageModeling(special: special, vocabularySize: 1000, sequenceLength: 512, maxPredictions: 5)
        XCTAssertEqual(capped.mask(ids, using: &generator).labels.filter { $0 != MaskedLanguageModeling.ignoredLabel }.count, 5)
        XCTAssertEqual(mlm.mask([101, 7, 102], using: &generator).labels.filter { $0 != MaskedLanguageModeling.ignoredLabel }, [7])
    }

    func testSentencePairsAreLaidOutAsBERTsInputs() throws {
        let mlm = try MaskedLanguageModeling(special: special, vocabularySize: 1000, sequenceLength: 32, maxPredictions: 5)
        // Sentence s of document d holds tokens 1000·d + 10·s + k, so a continuation can be recognised.
        var documents: [[[Int32]]] = []
        for d in 1...6 {
            var sentences: [[Int32]] = []
            for s in 0..<8 {
                let first = Int32(1000 * d + 10 * s)
                sentences.append(Array(first..<(first + Int32(4 + s % 3))))
            }
            documents.append(sentences)
        }
        var generator = SeededGenerator(seed: 2)
        let examples = mlm.examples(documents: documents, using: &generator)
        XCTAssertGreaterThan(examples.count, 6)
        var randomNext = 0
        for example in examples {
            XCTAssertEqual(example.inputIDs.count, 32)
            XCTAssertLessThanOrEqual(example.length, 32)
            XCTAssertEqual(example.inputIDs.first, 101)
            XCTAssertTrue(example.inputIDs[example.length...].allSatisfy { $0 == 0 }, "padding after the real tokens")
            let separators = example.tokenTypes.indices.filter { $0 < example.length && example.inputIDs[$0] == 102 }
            XCTAssertEqual(separators.last, example.length - 1)
            // Types: 0 through the first [SEP], 1 through the second, 0 for padding.
            let firstSeparator = example.tokenTypes.firstIndex(of: 1)! - 1
            XCTAssertEqual(example.tokenTypes[..<(firstSeparator + 1)].filter { $0 != 0 }.count, 0)
            XCTAssertTrue(example.tokenTypes[(firstSeparator + 1)..<example.length].allSatisfy { $0 == 1 })
            // Unmasked tokens tell whether B came from A's document.
            func document(_ range: Range<Int>) -> Set<Int32> {
                Set(range.compactMap { i -> Int32? in
                    let token = example.labels[i] == MaskedLanguageModeling.ignoredLabel ? example.inputIDs[i] : example.labels[i]
                    return token >= 1000 ? token / 1000 : nil
                })
            }
            let a = document(1..<firstSeparator), b = document((firstSeparator + 1)..<(example.length - 1))
            XCTAssertEqual(a.count, 1)
            XCTAssertEqual(b.count, 1)
            XCTAssertEqual(a == b, !example.isRandomNext)
            if example.isRandomNext { randomNext += 1 }
        }
        XCTAssertGreaterThan(randomNext, 0)
        XCTAssertLessThan(randomNext, examples.count)
    }

    func testSpecialIDsComeFromTheVocabularyOrAreNamedMissing() throws {
        func tokenizer(_ vocabulary: [String: Int32]) throws -> WordPieceTokenizer {
            let vocab = String(decoding: try JSONEncoder().encode(vocabulary), as: UTF8.self)
            return try WordPieceTokenizer(tokenizerJSONData: Data(
                #"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": \#(vocab)}, "pre_tokenizer": {"type": "WhitespaceSplit"}}"#.utf8))
        }
        let base: [String: Int32] = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4]
        XCTAssertThrowsError(try MaskedLanguageModeling.SpecialIDs(tokenizer(base))) { error in
            XCTAssertEqual(error as? MaskedLanguageModelingError, .missingToken("[MASK]"))
            XCTAssertEqual("\(error)", "the vocabulary has no [MASK] token, which BERT's pretraining examples need")
        }
        let ids = try MaskedLanguageModeling.SpecialIDs(tokenizer(base.merging(["[MASK]": 5]) { $1 }))
        XCTAssertEqual(ids, MaskedLanguageModeling.SpecialIDs(classifier: 2, separator: 3, mask: 5, padding: 0))
    }

    func testTruncationKeepsBothWithinTheLength() {
        var generator = SeededGenerator(seed: 3)
        var a = [Int32](repeating: 1, count: 40), b = [Int32](repeating: 2, count: 10)
        MaskedLanguageModeling.truncate(&a, &b, to: 29, using: &generator)
        XCTAssertEqual(a.count + b.count, 29)
        XCTAssertEqual(b.count, 10, "the longer side is cut first")
        XCTAssertThrowsError(try MaskedLanguageModeling(special: special, vocabularySize: 10, sequenceLength: 4, maxPredictions: 1)) {
            XCTAssertEqual($0 as? MaskedLanguageModelingError, .invalid("sequence length must be ≥ 5, not 4"))
        }
    }
}

final class PretrainingBatchesTests: XCTestCase {
    let special = MaskedLanguageModeling.SpecialIDs(classifier: 2, separator: 3, mask: 4, padding: 0)

    func testDocumentsAreBlankLineSeparatedSentences() {
        let text = "  First sentence.\nSecond one.  \n\n\n\tThird, in a new document.\n\n"
        XCTAssertEqual(PretrainingDocuments.split(text), [["First sentence.", "Second one."], ["Third, in a new document."]])
        XCTAssertEqual(PretrainingDocuments.split("\n\n"), [])
        let tokenized = PretrainingDocuments.tokenize([["a", ""], [""], ["b c"]]) { $0.isEmpty ? [] : $0.split(separator: " ").map { _ in Int32(7) } }
        XCTAssertEqual(tokenized, [[[7]], [[7, 7]]], "empty sentences and the documents they leave empty are dropped")
        let embedded = PretrainingDocuments.split(PretrainingDocuments.embedded(sentences: 20, sentencesPerDocument: 8))
        XCTAssertEqual(embedded.map(\.count), [8, 8, 4])
        XCTAssertTrue(embedded.joined().allSatisfy { $0.hasSuffix(".") && ($0.hasPrefix("The ") || $0.hasPrefix("A ")) }, "\(embedded)")
    }

    /// Documents survive their shard (−1 ends a sentence, −2 a document); the cache tokenizes once per recipe and
    /// reads back afterwards, and a damaged stream is refused.
    func testDocumentShardRoundTripAndCache() throws {
        let documents: [[[Int32]]] = [[[5, 6], [7]], [[8, 9, 10]], [[11], [], [12]]]
        XCTAssertEqual(try PretrainingDocuments.unflatten(PretrainingDocuments.flatten(documents)), documents)
        XCTAssertThrowsError(try PretrainingDocuments.unflatten([5, -1]))
        XCTAssertThrowsError(try PretrainingDocuments.unflatten([5, -2]))
        XCTAssertThrowsError(try PretrainingDocuments.unflatten([5, -3, -1, -2]))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-docs-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        var made = 0
        func make() -> [[[Int32]]] { made += 1; return documents }
        XCTAssertEqual(try PretrainingDocuments.cached(in: folder, recipe: "a", make: make).reused, false)
        let again = try PretrainingDocuments.cached(in: folder, recipe: "a", make: make)
        XCTAssertEqual(again.documents, documents)
        XCTAssertTrue(again.reused)
        XCTAssertEqual(made, 1)
        XCTAssertFalse(try PretrainingDocuments.cached(in: folder, recipe: "b", make: make).reused, "another recipe tokenizes again")
        XCTAssertEqual(made, 2)
    }

    /// The vocabulary made from text: every word of it one piece, specials first, every character a fallback (so no
    /// word is unknown), capped at the size asked for, and a tokenizer.json slope reads back.
    func testVocabularyFromText() throws {
        let text = "The fox sees the dog.\nA dog finds two foxes!\nÉcole."
        let tokenizer = try WordPieceTokenizer(tokenizerJSONData: WordPieceVocabularyBuilder.tokenizerJSON(text: text, size: 1000))
        for (index, token) in WordPieceVocabularyBuilder.specialTokens.enumerated() { XCTAssertEqual(tokenizer.id(of: token), Int32(index)) }
        let ids = try tokenizer.encodeWithoutAddedTokens("the dog finds two foxes")
        XCTAssertEqual(ids.count, 5, "whole words")
        XCTAssertEqual(tokenizer.decode(ids), "the dog finds two foxes")
        XCTAssertEqual(try tokenizer.encode("fox"), [2, tokenizer.id(of: "fox")!, 3], "[CLS] … [SEP] around")
        XCTAssertEqual(tokenizer.decode(try tokenizer.encodeWithoutAddedTokens("Ecole")), "ecole", "lower-cased and accents stripped")
        let unseen = try tokenizer.encodeWithoutAddedTokens("dogfox")
        XCTAssertFalse(unseen.contains(tokenizer.id(of: "[UNK]")!), "an unseen word is cut into characters")
        XCTAssertEqual(tokenizer.decode(unseen), "dogfox")
        let small = try WordPieceTokenizer(tokenizerJSONData: WordPieceVocabularyBuilder.tokenizerJSON(text: text, size: 0))
        let characters = Set("the fox sees dog a finds two foxes ecole.!".filter { $0 != " " }).count
        XCTAssertEqual(small.vocabularySize, 5 + 2 * characters + 0, "specials and characters are always kept")
        XCTAssertEqual(small.vocabularySize + 3, try WordPieceTokenizer(
            tokenizerJSONData: WordPieceVocabularyBuilder.tokenizerJSON(text: text, size: small.vocabularySize + 3)).vocabularySize)
    }

    func makeBatches(count: Int, mode: MaskedLanguageModelingBatches.Masking, batch: Int = 4) throws -> MaskedLanguageModelingBatches {
        let mlm = try MaskedLanguageModeling(special: special, vocabularySize: 100, sequenceLength: 16, maxPredictions: 3)
        let instances = (0..<count).map { i in
            let a = (0..<(1 + i % 4)).map { Int32(10 + i % 80 + $0) }, b = [Int32(90 - i % 50)]
            return mlm.instance(a, b, isRandomNext: i % 3 == 0)
        }
        return try MaskedLanguageModelingBatches(instances: instances, masking: mlm, mode: mode, batchSize: batch, seed: 9)
    }

    /// Each epoch visits every instance once (the last partial batch left), in a new order; static masks repeat every
    /// epoch and dynamic ones change; batches are padded to their longest sequence; a restored position continues
    /// with exactly the batches an uninterrupted run gets.
    func testBatchesCoverEachEpochAndResume() throws {
        var batches = try makeBatches(count: 10, mode: .static)
        XCTAssertEqual(batches.batchesPerEpoch, 2)
        var seen: [[Int32]] = []
        for _ in 0..<2 {
            let batch = batches.next()
            XCTAssertEqual(batch.count, 4)
            XCTAssertEqual(batch.sequenceLength, batch.lengths.max())
            XCTAssertEqual(batch.inputIDs.count, 4 * batch.sequenceLength)
            XCTAssertEqual(batch.tokenTypes.count, batch.inputIDs.count)
            for row in 0..<4 {
                let start = row * batch.sequenceLength
                XCTAssertEqual(batch.inputIDs[start], 2)
                XCTAssertTrue(batch.inputIDs[(start + batch.lengths[row])..<(start + batch.sequenceLength)].allSatisfy { $0 == 0 })
                seen.append(Array(batch.labels[start..<(start + batch.sequenceLength)]))
            }
            XCTAssertGreaterThan(batch.predictions, 0)
        }
        XCTAssertEqual(Set(MaskedLanguageModelingBatches.order(count: 10, epoch: 0, seed: 9).prefix(8)).count, 8)
        XCTAssertNotEqual(MaskedLanguageModelingBatches.order(count: 10, epoch: 0, seed: 9), MaskedLanguageModelingBatches.order(count: 10, epoch: 1, seed: 9))
        XCTAssertEqual(batches.position, .init(epoch: 0, batch: 2))
        _ = batches.next()
        XCTAssertEqual(batches.position, .init(epoch: 1, batch: 1))
        // Masks: the same instance in epochs 0 and 1.
        for mode in MaskedLanguageModelingBatches.Masking.allCases {
            let b = try makeBatches(count: 40, mode: mode)
            let all = Array(0..<40)
            let (epoch0, epoch1) = (b.batch(all, epoch: 0), b.batch(all, epoch: 1))
            XCTAssertEqual(epoch0 == epoch1, mode == .static, "\(mode)")
            XCTAssertEqual(epoch0.nextSentenceLabels, (0..<40).map { $0 % 3 == 0 ? 1 : 0 })
        }
        // Resume.
        var uninterrupted = try makeBatches(count: 10, mode: .dynamic)
        var resumed = try makeBatches(count: 10, mode: .dynamic)
        for _ in 0..<3 { _ = uninterrupted.next() }
        resumed.restore(uninterrupted.position)
        for _ in 0..<5 { XCTAssertEqual(uninterrupted.next(), resumed.next()) }
        XCTAssertThrowsError(try makeBatches(count: 3, mode: .static)) { XCTAssertTrue("\($0)".contains("cannot fill a batch of 4"), "\($0)") }
    }
}
