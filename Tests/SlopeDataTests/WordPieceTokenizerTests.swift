import Foundation
@testable import SlopeData
import XCTest

/// WordPiece tokenizer.json files against the ids and text the `tokenizers` library gives
/// (Tests/Fixtures/tokenizers/make_fixtures.py), and what is refused.
final class WordPieceTokenizerTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers")

    @discardableResult
    func assertParity(_ name: String, _ expectedFile: String) throws -> WordPieceTokenizer {
        struct Expected: Decodable { let text: String; let ids: [Int32]; let decoded: String }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent(expectedFile)))
        let path = fixtures.appendingPathComponent(name).path
        XCTAssertEqual(try TokenizerJSON.modelType(atPath: path), "WordPiece")
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: path)
        let ids = try tokenizer.encode(expected.text)
        let firstDifference = zip(ids, expected.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertEqual(ids.count, expected.ids.count, name)
        XCTAssertNil(firstDifference, "\(name): first difference at \(firstDifference ?? -1): \(ids.dropFirst(max(0, (firstDifference ?? 0) - 3)).prefix(8)) vs "
            + "\(expected.ids.dropFirst(max(0, (firstDifference ?? 0) - 3)).prefix(8))")
        XCTAssertEqual(tokenizer.decode(ids), expected.decoded, "\(name): decoding as the library does")
        return tokenizer
    }

    /// BERT's layout: BertNormalizer (control characters, whitespace, CJK set apart, accents stripped, lowercase),
    /// BertPreTokenizer, ## continuations, [UNK] for what cannot be cut, [CLS] … [SEP] around, [SEP] in the text as
    /// one id. Zero ids differ on the edge-case text.
    func testParityWithTheTokenizersLibraryBERT() throws {
        let bert = try assertParity("bert-wordpiece.json", "bert-edge-cases.json")
        let (cls, sep) = (bert.specialTokens.id(of: "[CLS]")!, bert.specialTokens.id(of: "[SEP]")!)
        XCTAssertEqual(bert.endOfText, sep)
        XCTAssertEqual(try bert.encode("[SEP]"), [cls, sep, sep])
        XCTAssertEqual(try bert.encode("The FOX"), try bert.encode("the fox"), "lowercased")
        XCTAssertEqual(bert.words("a,b  c日本"), ["a", ",", "b", "c日本"], "punctuation isolated (CJK spacing is the normalizer's)")
        XCTAssertEqual(bert.normalized("a日b\u{7}\tÉ"), "a 日 b e", "control dropped, tab a space, CJK set apart, accent stripped")
    }

    /// Cased WordPiece behind NFD + StripAccents, split at whitespace only, BertProcessing's [CLS] and [SEP].
    func testParityWithTheTokenizersLibraryCasedWordPiece() throws {
        try assertParity("wordpiece-cased-wordpiece.json", "wordpiece-cased-edge-cases.json")
    }

    /// WordPiece behind NFC + Lowercase with the `Whitespace` pre-tokenizer: runs of word characters and runs of other
    /// symbols are separate words.
    func testParityWithTheTokenizersLibraryWhitespacePreTokenizer() throws {
        let tokenizer = try assertParity("wordpiece-symbols-wordpiece.json", "wordpiece-symbols-edge-cases.json")
        XCTAssertEqual(tokenizer.words("it's 3.14, a_b—x!!"), ["it", "'", "s", "3", ".", "14", ",", "a_b", "—", "x", "!!"])
    }

    func testPiecesAndRefusals() throws {
        let vocabulary: [String: Int32] = ["[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "a": 4, "##b": 5]
        func file(_ extra: String, model: String = "WordPiece") -> Data {
            let vocab = String(decoding: try! JSONEncoder().encode(vocabulary), as: UTF8.self)
            return Data(#"{"model": {"type": "\#(model)", "unk_token": "[UNK]", "vocab": \#(vocab), "max_input_chars_per_word": 6}, \#(extra)}"#.utf8)
        }
        let tokenizer = try WordPieceTokenizer(tokenizerJSONData: file(#""pre_tokenizer": {"type": "WhitespaceSplit"}"#))
        XCTAssertEqual(try tokenizer.encode("unaffable"), [0], "longer than max_input_chars_per_word: unknown")
        XCTAssertEqual(try tokenizer.encode("unaff ab ax"), [1, 2, 4, 5, 0], "longest pieces; a word that cannot be cut is unknown")
        XCTAssertEqual(tokenizer.decode([1, 2, 4, 5]), "unaff ab")
        // Any splitting pre-tokenizer, in a Sequence too, behind the compatibility forms.
        let digits = try WordPieceTokenizer(tokenizerJSONData: file(#""normalizer": {"type": "NFKC"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Punctuation"}]}"#))
        XCTAssertEqual(digits.words(digits.normalized("\u{FF41}b,un")), ["ab", ",", "un"])
        for (extra, named) in [(#""pre_tokenizer": {"type": "Metaspace"}"#, "pre-tokenizer Metaspace"),
                               (#""pre_tokenizer": {"type": "WhitespaceSplit"}, "normalizer": {"type": "Precompiled"}"#, "normalizer Precompiled"),
                               (#""normalizer": {"type": "NFKC"}"#, "a model without a pre-tokenizer"),
                               (#""pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": {"type": "RobertaProcessing"}"#, "post-processor RobertaProcessing"),
                               (#""pre_tokenizer": {"type": "WhitespaceSplit"}, "decoder": {"type": "ByteLevel"}"#, "decoder ByteLevel")] {
            XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSONData: file(extra))) { error in
                XCTAssertTrue("\(error)".contains(named) && "\(error)".contains("not supported"), "\(error)")
            }
        }
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSONData: file(#""pre_tokenizer": {"type": "WhitespaceSplit"}"#, model: "Unigram"))) {
            XCTAssertTrue("\($0)".contains("model type is Unigram, not WordPiece"), "\($0)")
        }
    }
}
