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
