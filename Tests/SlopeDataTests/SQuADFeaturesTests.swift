import Foundation
@testable import SlopeData
import XCTest

/// run_squad's windows: every context token is in some window and is "max context" in exactly one, the answer's
/// positions point at its words, windows that miss the answer point at [CLS], and the question is cut to its limit.
final class SQuADFeaturesTests: XCTestCase {
    func testWindowsCoverTheContextAndLocateTheAnswer() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/bert-wordpiece.json").path
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: path)
        let context = "the cat sat on a mat , then the dog sat on the cat and a bird sat on the dog ."
        let answerText = "the dog"
        let start = context.range(of: "the dog")!.lowerBound.utf16Offset(in: context)
        let question = SQuADQuestion(id: "1", question: "who sat on the cat", context: context, answers: [.init(text: answerText, start: start)])
        let features = try SQuADFeatures.make(question, tokenizer: tokenizer, maxLength: 24, stride: 6, maxQueryLength: 5)
        XCTAssertGreaterThan(features.count, 2, "a context longer than one window")
        let queryLength = try min(tokenizer.encodeWithoutAddedTokens(question.question).count, 5)
        var maxContextCount: [Range<Int>: Int] = [:]
        var found = false
        for feature in features {
            XCTAssertLessThanOrEqual(feature.ids.count, 24)
            XCTAssertEqual(feature.ids.first, tokenizer.id(of: "[CLS]"))
            XCTAssertEqual(feature.ids[queryLength + 1], tokenizer.id(of: "[SEP]"))
            XCTAssertEqual(feature.tokenTypes.filter { $0 == 0 }.count, queryLength + 2)
            XCTAssertTrue(feature.offsets.prefix(queryLength + 2).allSatisfy { $0 == nil }, "no question token is in the context")
            for (offset, isMax) in zip(feature.offsets, feature.isMaxContext) where offset != nil && isMax {
                maxContextCount[offset!, default: 0] += 1
            }
            if feature.startPosition > 0 {
                found = true
                let scalars = Array(context.unicodeScalars)
                let span = feature.offsets[feature.startPosition]!.lowerBound..<feature.offsets[feature.endPosition]!.upperBound
                XCTAssertEqual(String(String.UnicodeScalarView(scalars[span])), answerText)
            } else {
                XCTAssertEqual(feature.endPosition, 0, "a window without the answer points at [CLS]")
            }
        }
        XCTAssertTrue(found, "some window holds the answer")
        // Every word of the context is some window's max-context token (its pieces, once per piece).
        let words = context.split(separator: " ").count
        XCTAssertGreaterThanOrEqual(maxContextCount.count, words)
    }
}
