import Foundation
import SlopeCore
import SlopeTestSupport
import XCTest

/// The ops that choose tokens from logits: argmax (greedy) and a draw by inverse transform.
final class DecodingOpTests: XCTestCase {
    let cpu = CPUBackend()

    /// Weights e⁰ and e^{ln 3} at temperature 1: probabilities 1/4 and 3/4, so uniforms below 1/4 pick column 0;
    /// at temperature 2 the weights are 1 and √3. Temperature 0 is the argmax; NaN logits weigh nothing.
    func testSampleRowsInvertsTheSoftmax() throws {
        let logits = try cpu.tensor([0, Float(log(3.0)), .nan], shape: [1, 3], dtype: .float32)
        func draw(_ t: Float, _ u: Float) throws -> Int32 { try cpu.int32s(cpu.sampleRows(logits, temperatures: [t], uniforms: [u]))[0] }
        XCTAssertEqual(try draw(1, 0.2499), 0)
        XCTAssertEqual(try draw(1, 0.2501), 1)
        XCTAssertEqual(try draw(1, 0.9999), 1)
        let split = Float(1 / (1 + Double(3).squareRoot()))  // temperature 2: 1 / (1 + √3)
        XCTAssertEqual(try draw(2, split - 1e-4), 0)
        XCTAssertEqual(try draw(2, split + 1e-4), 1)
        XCTAssertEqual(try draw(0, 0), 1, "greedy")
        // Several rows at once, each with its own temperature and uniform; bad arguments are named.
        let rows = try cpu.tensor([5, 0, 0, 0, 0, 5] as [Float], shape: [2, 3], dtype: .float32)
        XCTAssertEqual(try cpu.int32s(cpu.sampleRows(rows, temperatures: [0, 0.01], uniforms: [0.9, 0.5])), [0, 2])
        XCTAssertThrowsError(try cpu.sampleRows(rows, temperatures: [1], uniforms: [0.5])) { XCTAssertTrue("\($0)".contains("for each of the 2 rows")) }
        XCTAssertThrowsError(try cpu.sampleRows(rows, temperatures: [1, 1], uniforms: [0.5, 1])) { XCTAssertTrue("\($0)".contains("[0, 1)")) }
        XCTAssertThrowsError(try cpu.sampleRows(rows, temperatures: [-1, 1], uniforms: [0.5, 0.5]))
    }

    /// Over many uniforms, the draws follow the softmax at the temperature.
    func testSampleRowsFollowsTheDistribution() throws {
        let values: [Float] = [1, 2, 0.5, -1, 3]
        let logits = try cpu.tensor(values, shape: [1, 5], dtype: .float32)
        var counts = [Int](repeating: 0, count: 5)
        let draws = 4000
        for k in 0..<draws {
            let u = (Float(k) + 0.5) / Float(draws)  // evenly spread: the counts are the probabilities to within 1/draws
            counts[Int(try cpu.int32s(cpu.sampleRows(logits, temperatures: [0.7], uniforms: [u]))[0])] += 1
        }
        let weights = values.map { exp(Double($0) / 0.7) }
        for (column, weight) in weights.enumerated() {
            XCTAssertEqual(Double(counts[column]) / Double(draws), weight / weights.reduce(0, +), accuracy: 1e-3, "column \(column)")
        }
    }

    /// Top-k keeps the k largest (ties by column), top-p the fewest whose weights reach p of the total, whichever is
    /// fewer; NaNs are never kept; a greedy row is left as it is; bad arguments are named.
    func testTruncatedLogitsKeepTheTopKAndTheNucleus() throws {
        let inf = -Float.infinity
        // Weights at temperature 1: e³ ≈ 20.1, e² ≈ 7.4, e² , e⁰ = 1, and a NaN: total ≈ 35.9.
        let row: [Float] = [2, 3, .nan, 0, 2]
        let logits = try cpu.tensor(row + row + row + row, shape: [4, 5], dtype: .float32)
        let out = try cpu.floats(cpu.truncatedLogits(logits, temperatures: [1, 1, 1, 0], topK: [2, 0, 4, 1], topP: [1, 0.6, 0.8, 0.1]))
        XCTAssertEqual(Array(out[0..<5]), [2, 3, inf, inf, inf], "top-2: 3, then the first of the tied 2s")
        XCTAssertEqual(Array(out[5..<10]), [2, 3, inf, inf, inf], "top-p 0.6: e³ alone is 56%, with the first tied e² 77%")
        XCTAssertEqual(Array(out[10..<15]), [2, 3, inf, inf, 2], "top-p 0.8 within top-4: e³ + 2·e² = 97% ≥ 80% after three")
        XCTAssertEqual(Array(out[15..<20]).map { $0.isNaN ? 99 : $0 }, [2, 3, 99, 0, 2], "temperature 0: copied")
        XCTAssertThrowsError(try cpu.truncatedLogits(logits, temperatures: [1, 1, 1, 1], topK: [0, 0, 0, 0], topP: [0, 1, 1, 1])) {
            XCTAssertTrue("\($0)".contains("top-p in (0, 1]"))
        }
        XCTAssertThrowsError(try cpu.truncatedLogits(logits, temperatures: [1], topK: [0], topP: [1]))
    }
}
