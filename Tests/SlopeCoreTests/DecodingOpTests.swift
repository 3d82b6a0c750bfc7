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

    /// The decode step's ops with their indices in int32 tensors (what a recorded step reads) give the host-array
    /// forms' results; bad index tensors are refused by name.
    func testDeviceIndexFormsEqualTheHostArrayForms() throws {
        var generator = SeededGenerator(seed: 3)
        func random(_ shape: [Int]) throws -> Tensor {
            try cpu.tensor((0..<shape.reduce(1, *)).map { _ in Float(generator.nextUniform() * 2 - 1) }, shape: shape, dtype: .float32)
        }
        func vector(_ values: [Int32]) throws -> Tensor { try cpu.tensor(values, shape: [values.count]) }
        let x = try random([3, 8])
        let rotated = try cpu.rotaryEmbedding(x, positions: vector([5, 0, 11]), headDimension: 4, base: 100, positionLimit: 12)
        let expected = try cpu.rotaryEmbedding(x, layout: RotaryLayout(positions: [5, 0, 11], headDimension: 4, base: 100), inverse: false)
        XCTAssertEqual(try cpu.floats(rotated), try cpu.floats(expected))
        XCTAssertNotEqual(try cpu.floats(rotated), try cpu.floats(x), "positions 5 and 11 rotate")

        let (cache, copy) = (try random([6, 8]), try cpu.zeros([6, 8], dtype: .float32))
        try cpu.copy(cache, into: copy)
        try cpu.scatterRows(x, into: cache, rows: vector([4, 0, 2]))
        try cpu.moveRows(x, from: nil, into: copy, to: [4, 0, 2])
        XCTAssertEqual(try cpu.floats(cache), try cpu.floats(copy))
        let gathered = try cpu.gatherRows(cache, rows: vector([2, 5, 2, 0]))
        XCTAssertEqual(gathered.shape, [4, 8])
        let cacheValues = try cpu.floats(cache)
        XCTAssertEqual(try cpu.floats(gathered), [2, 5, 2, 0].flatMap { cacheValues[($0 * 8)..<($0 * 8 + 8)] })

        let shape = DecodeAttentionShape(queryHeads: 2, keyValueHeads: 2, headDimension: 4)
        let attended = try cpu.decodeAttention(query: x, keys: cache, values: copy, ranges: vector([0, 2, 3, 1, 4, 3]), maxLength: 4, shape: shape)
        let reference = try cpu.decodeAttention(query: x, keys: cache, values: copy, starts: [0, 2, 3], lengths: [1, 4, 3], shape: shape)
        XCTAssertEqual(try cpu.floats(attended), try cpu.floats(reference))

        let target = try vector([0, 0, 0])
        try cpu.write([7, -1, 9], into: target)
        XCTAssertEqual(try cpu.int32s(target), [7, -1, 9])

        let refusals: [(String, () throws -> Void)] = [
            ("rows must be int32 [3]", { try self.cpu.scatterRows(x, into: cache, rows: vector([4, 0])) }),
            ("a row index outside its tensor", { try self.cpu.scatterRows(x, into: cache, rows: vector([4, 0, 6])) }),
            ("rows must be an int32 vector", { _ = try self.cpu.gatherRows(cache, rows: random([2])) }),
            ("a row index outside its tensor", { _ = try self.cpu.gatherRows(cache, rows: vector([1, 6])) }),
            ("ranges must be int32 [6]", {
                _ = try self.cpu.decodeAttention(query: x, keys: cache, values: copy, ranges: vector([0, 1]), maxLength: 4, shape: shape)
            }),
            ("inside the 6 rows of the cache", {
                _ = try self.cpu.decodeAttention(query: x, keys: cache, values: copy, ranges: vector([0, 2, 5, 1, 4, 3]), maxLength: 4, shape: shape)
            }),
            ("a length exceeds the maximum of 3", {
                _ = try self.cpu.decodeAttention(query: x, keys: cache, values: copy, ranges: vector([0, 2, 3, 1, 4, 3]), maxLength: 3, shape: shape)
            }),
            ("positions must be int32 [3]", {
                _ = try self.cpu.rotaryEmbedding(x, positions: random([3]), headDimension: 4, base: 100, positionLimit: 12)
            }),
            ("a position outside 0 ..< 11", {
                _ = try self.cpu.rotaryEmbedding(x, positions: vector([5, 0, 11]), headDimension: 4, base: 100, positionLimit: 11)
            }),
            ("do not fill", { try self.cpu.write([1, 2], into: target) }),
        ]
        for (message, call) in refusals {
            XCTAssertThrowsError(try call(), message) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
    }
}
