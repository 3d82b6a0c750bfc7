import FoundationEssentials
@testable import SLoPe
@testable import SlopeData
import XCTest

/// GLUE's metrics and SQuAD's scoring against values computed with the reference formulas (scikit-learn's and
/// SciPy's definitions, SQuAD v1.1's evaluate script) on small inputs, and the GLUE and SQuAD readers on fixtures in
/// the distributed formats.
final class TaskMetricsTests: XCTestCase {
    func testClassificationMetrics() throws {
        let predictions = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1], labels = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0]  // tp 4, tn 3, fp 2, fn 1
        XCTAssertEqual(try XCTUnwrap(TaskMetrics.accuracy(predictions: predictions, labels: labels)), 0.7, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(TaskMetrics.f1(predictions: predictions, labels: labels)), 0.7272727272727272, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(TaskMetrics.matthewsCorrelation(predictions: predictions, labels: labels)), 0.408248290463863, accuracy: 1e-12)
        XCTAssertEqual(TaskMetrics.matthewsCorrelation(predictions: [1, 1, 1], labels: [1, 0, 1]), 0, "an empty row: 0, as scikit-learn")
        XCTAssertEqual(TaskMetrics.f1(predictions: [0, 0], labels: [1, 1]), 0)
        XCTAssertNil(TaskMetrics.accuracy(predictions: [1], labels: [1, 0]))
        XCTAssertNil(TaskMetrics.accuracy(predictions: [], labels: []))
    }

    func testCorrelationsWithTies() throws {
        let x = [1.0, 2.0, 2.0, 3.5, 5.0, 0.5], y = [1.2, 1.9, 2.5, 3.0, 4.8, 1.0]
        XCTAssertEqual(try XCTUnwrap(TaskMetrics.pearson(x, y)), 0.9801036418621679, accuracy: 1e-12)
        XCTAssertEqual(TaskMetrics.ranks(x), [2, 3.5, 3.5, 5, 6, 1], "ties share their average rank")
        XCTAssertEqual(try XCTUnwrap(TaskMetrics.spearman(x, y)), 0.9856107606091623, accuracy: 1e-12)
        XCTAssertNil(TaskMetrics.pearson([1, 1, 1], [1, 2, 3]), "no variance: undefined")
    }

    /// SQuAD's normalisation: lower case, ASCII punctuation (the underscore too) removed, whole-word articles
    /// removed even next to other punctuation, whitespace collapsed.
    func testSQuADNormalisationAndScores() {
        let cases = [("The  Eiffel Tower!", "eiffel tower"), ("an apple, a day", "apple day"), ("«the» theater’s  A-team", "« » theater’s ateam"),
                     ("Theatre of the_absurd", "theatre of theabsurd"), ("Año Nuevo: the 1st", "año nuevo 1st"), ("a", "")]
        for (text, expected) in cases { XCTAssertEqual(SQuADScore.normalize(text), expected, text) }
        XCTAssertEqual(SQuADScore.f1("the cat sat on the mat", "a cat on a mat"), 0.8571428571428571, accuracy: 1e-12)
        XCTAssertEqual(SQuADScore.f1("cat cat dog", "cat dog dog"), 2.0 / 3, accuracy: 1e-12, "tokens count as often as both have them")
        XCTAssertEqual(SQuADScore.exactMatch("Denver Broncos", "The Denver Broncos!"), 1)
        let result = SQuADScore.evaluate(
            answers: ["q1": ["Denver Broncos", "The Broncos"], "q2": ["Santa Clara, California", "Levi's Stadium"], "q3": ["gold"]],
            predictions: ["q1": "the Denver Broncos", "q2": "Levi's Stadium in Santa Clara"])
        XCTAssertEqual(result.exactMatch, 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(result.f1, 52.38095238095239, accuracy: 1e-9)
        XCTAssertEqual(result.unanswered, 1, "an unanswered question scores 0")
    }

    func testGLUEReadersFollowEachTasksLayout() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("glue-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func write(_ name: String, _ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/" + name)) }

        try write("train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\r\ngj04\t0\t*\tThey drank the pub.\n")  // CoLA: no header, CRLF
        let cola = try GLUEReader.read(.cola, split: .train, folder: folder)
        XCTAssertEqual(cola.examples, [GLUEExample(first: "Our friends won't buy this analysis.", second: nil, label: .classIndex(1)),
                                       GLUEExample(first: "They drank the pub.", second: nil, label: .classIndex(0))])
        try write("dev_matched.tsv", "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label\n"
            + "0\t1\t1e\tgov\t(\t(\t(\t(\tThe new rights are nice.\tEveryone likes them.\tneutral\tneutral\n")
        XCTAssertEqual(try GLUEReader.read(.mnli, split: .dev, folder: folder).examples,
                       [GLUEExample(first: "The new rights are nice.", second: "Everyone likes them.", label: .classIndex(2))])
        try write("dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
            + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000\n")
        XCTAssertEqual(try GLUEReader.read(.stsb, split: .dev, folder: folder).examples.first?.label, .score(5))
        // QQP's broken rows are skipped and counted, as the reference processors do; elsewhere they are errors.
        try write("train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tHow?\tWhy?\t0\n2\t3\tbroken row\n3\t5\t6\tA?\tA?\t1\n")
        let qqp = try GLUEReader.read(.qqp, split: .train, folder: folder)
        XCTAssertEqual(qqp.examples.map(\.label), [.classIndex(0), .classIndex(1)])
        XCTAssertEqual(qqp.skipped, 1)
        try write("train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tC\tD\tmaybe\n")
        XCTAssertThrowsError(try GLUEReader.read(.rte, split: .train, folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("line 3") && "\(error)".contains("'maybe' is not one of entailment, not_entailment"), "\(error)")
        }
        XCTAssertThrowsError(try GLUEReader.read(.sst2, split: .dev, folder: folder + "/missing")) { error in
            XCTAssertTrue("\(error)".contains("GLUE's SST2 files"), "\(error)")
        }
    }

    func testSQuADReader() throws {
        let json = #"""
        {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Año 2016: Denver won.",
         "qas": [{"id": "a1", "question": "Who won?", "answers": [{"text": "Denver", "answer_start": 10}]}]}]}]}
        """#
        let questions = try SQuADReader.parse(Data(json.utf8), path: "dev-v1.1.json", requireAnswers: true)
        XCTAssertEqual(questions, [SQuADQuestion(id: "a1", question: "Who won?", context: "Año 2016: Denver won.", answers: [.init(text: "Denver", start: 10)])])
        let context = Array(questions[0].context.unicodeScalars)
        XCTAssertEqual(String(String.UnicodeScalarView(context[10..<16])), "Denver", "offsets count Unicode scalars, as Python's indices")
        XCTAssertThrowsError(try SQuADReader.parse(Data(json.replacingOccurrences(of: "\"answer_start\": 10", with: "\"answer_start\": 19").utf8),
                                                   path: "bad.json", requireAnswers: true)) { error in
            XCTAssertTrue("\(error)".contains("runs past its context"), "\(error)")
        }
        XCTAssertThrowsError(try SQuADReader.parse(Data("{}".utf8), path: "x.json", requireAnswers: false)) { error in
            XCTAssertTrue("\(error)".contains("SQuAD v1.1's JSON"), "\(error)")
        }
    }
}

/// SQuAD span decoding on hand-made logits: the best raw pair is invalid (end before start), the next runs too long,
/// one lands on a question token, one starts where another window has more context; the decoder returns the best
/// valid span by start + end logit over both windows, and the n-best in order.
final class SQuADSpanTests: XCTestCase {
    func testBestValidSpanAcrossWindows() throws {
        let context = "Denver Broncos won Super Bowl 50 in Santa Clara."
        // Token character ranges in the context: "Denver" 0..<6, "Broncos" 7..<14, "won" 15..<18, "Super" 19..<24,
        // "Bowl" 25..<29, "50" 30..<32, "in" 33..<35, "Santa" 36..<41, "Clara" 42..<47.
        let words: [Range<Int>] = [0..<6, 7..<14, 15..<18, 19..<24, 25..<29, 30..<32, 33..<35, 36..<41, 42..<47]
        // Window 1: [CLS] question [SEP] Denver … Bowl; window 2 (stride): [CLS] question [SEP] Bowl … Clara.
        let first = SQuADSpans.Feature(
            startLogits: [0, 9, 0, 5, 1, 0, 4, 0], endLogits: [0, 0, 0, 6, 4.5, 0.5, 0, 8],
            offsets: [nil, nil, nil, words[0], words[1], words[2], words[3], words[4]],
            isMaxContext: [false, false, false, true, true, true, false, false])
        let second = SQuADSpans.Feature(
            startLogits: [0, 0, 0, 0, 0, 0, 3, 2.5], endLogits: [0, 0, 0, 0, 0, 0, 0, 4],
            offsets: [nil, nil, nil, words[4], words[5], words[6], words[7], words[8]],
            isMaxContext: [false, false, false, true, true, true, true, true])
        let answers = SQuADSpans.answers(context: context, features: [first, second], nBest: 5, maxAnswerLength: 4)
        // The question token (start logit 9) and "Super" in the first window (4 + 8, but the second window gives it more
        // context) never start a span; "Denver … Bowl" (5 + 8) is five tokens, past the limit of 4.
        XCTAssertEqual(answers.first, SQuADSpans.Answer(text: "Denver", characters: 0..<6, score: 11))
        XCTAssertEqual(answers.map(\.text), ["Denver", "Denver Broncos", "Broncos won Super Bowl", "Santa Clara", "Clara"])
        XCTAssertEqual(answers.map(\.score), [11, 9.5, 9, 7, 6.5])
        XCTAssertTrue(SQuADSpans.answers(context: context, features: [SQuADSpans.Feature(startLogits: [1], endLogits: [1], offsets: [nil])]).isEmpty,
                      "no span inside the context: no answer")
    }
}
