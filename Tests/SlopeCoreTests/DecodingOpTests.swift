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
}
