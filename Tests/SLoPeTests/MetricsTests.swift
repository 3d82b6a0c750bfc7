import FoundationEssentials
import SLoPe
import XCTest

/// The metrics file's JSON keys and the SVG loss plot's geometry.
final class MetricsTests: XCTestCase {
    func testRecordsUseTheDocumentedKeysAndOmitMissingValues() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let step = MetricsRecord(step: 3, loss: 1.5, learningRate: 0.5, gradientNorm: 2, tokens: 96, tokensPerSecond: 10, memoryBytes: 7)
        XCTAssertEqual(
            String(decoding: try encoder.encode(step), as: UTF8.self),
            #"{"grad_norm":2,"loss":1.5,"lr":0.5,"memory_bytes":7,"step":3,"tokens":96,"tokens_per_second":10}"#)
        let validation = MetricsRecord(step: 4, validationLoss: 1.25)
        XCTAssertEqual(String(decoding: try encoder.encode(validation), as: UTF8.self), #"{"step":4,"val_loss":1.25}"#)
        XCTAssertEqual(try JSONDecoder().decode(MetricsRecord.self, from: encoder.encode(step)), step)
    }

    func testPlotGeometry() {
        let records = [MetricsRecord(step: 1, loss: 2), MetricsRecord(step: 2, loss: 1), MetricsRecord(step: 2, validationLoss: 1.5)]
        let svg = LossPlot.svg(records, floor: 0.5, title: "run")
        // 720×420 with 56-pixel margins; losses span [0.95·floor, max] = [0.475, 2] over 308 pixels.
        XCTAssertTrue(svg.hasPrefix("<svg"), svg)
        XCTAssertTrue(svg.contains(#"<path d="M360.0,56.0 L664.0,258.0""#), "training loss: step 1 at mid-width and the top, step 2 at the right")
        XCTAssertTrue(svg.contains(#"<circle cx="664.0" cy="157.0""#), "validation point at loss 1.5")
        XCTAssertTrue(svg.contains("corpus floor 0.500"))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(LossPlot.svg([], floor: nil, title: "empty"), #"<svg xmlns="http://www.w3.org/2000/svg"/>"#)
    }
}
