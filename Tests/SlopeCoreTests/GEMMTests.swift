import SlopeCore
import SlopeTestSupport
import XCTest

final class GEMMTests: XCTestCase {
    let cpu = CPUBackend()

    override func tearDown() { CPUBackend.useSIMDLevel(nil) }

    /// op(A)·op(B)·alpha + beta·C + bias in Double, from row-major storage.
    private func reference(
        _ a: [Double], _ b: [Double], _ c: [Double], m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
        alpha: Double, beta: Double, bias: [Double]?
    ) -> [Double] {
        let opA = transA ? referenceTranspose(a, rows: k, columns: m) : a
        let opB = transB ? referenceTranspose(b, rows: n, columns: k) : b
        let product = referenceMatmul(opA, opB, m: m, k: k, n: n)
        return (0..<(m * n)).map { alpha * product[$0] + beta * c[$0] + (bias?[$0 % n] ?? 0) }
    }

    func testAllTransposeCombinationsAlphaBetaAndBias() throws {
        let shapes = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 48, 80), (130, 70, 257)]
        for level in CPUBackend.SIMDLevel.allCases {
            CPUBackend.useSIMDLevel(level)
            for (index, (m, n, k)) in shapes.enumerated() {
                for transA in [false, true] {
                    for transB in [false, true] {
                        let seed = UInt64(index * 4 + (transA ? 2 : 0) + (transB ? 1 : 0))
                        let a = randomValues(m * k, seed: seed)
                        let b = randomValues(k * n, seed: seed + 100)
                        let c = randomValues(m * n, seed: seed + 200)
                        let bias = randomValues(n, seed: seed + 300)
                        let ta = try cpu.tensor(a, shape: transA ? [k, m] : [m, k], dtype: .float32)
                        let tb = try cpu.tensor(b, shape: transB ? [n, k] : [k, n], dtype: .float32)
                        let tc = try cpu.tensor(c, shape: [m, n], dtype: .float32)
                        let tbias = try cpu.tensor(bias, shape: [n], dtype: .float32)
                        _ = try cpu.gemm(ta, tb, transposeA: transA, transposeB: transB, alpha: 0.5, beta: 0.75, into: tc, bias: tbias)
                        let expected = reference(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, alpha: 0.5, beta: 0.75, bias: bias)
                        assertClose(try cpu.doubles(tc), expected, rtol: 1e-4, atol: 1e-4 * Double(k).squareRoot(),
                                    "\(level) \(m)x\(n)x\(k) tA \(transA) tB \(transB)")
                    }
                }
            }
        }
    }

    func testBetaZeroIgnoresGarbageInC() throws {
        let a = try randomTensor(cpu, [20, 30], seed: 1)
        let b = try randomTensor(cpu, [30, 40], seed: 2)
        let c = try cpu.tensor([Float](repeating: .nan, count: 800), shape: [20, 40], dtype: .float32)
        _ = try cpu.gemm(a, b, transposeA: false, transposeB: false, alpha: 1, beta: 0, into: c, bias: nil)
        let expected = referenceMatmul(try cpu.doubles(a), try cpu.doubles(b), m: 20, k: 30, n: 40)
        assertClose(try cpu.doubles(c), expected, rtol: 1e-4, atol: 1e-4)
    }

    func testDoubleAndHalfPrecisionPaths() throws {
        let a = randomValues(12 * 8, seed: 3), b = randomValues(8 * 10, seed: 4)
        let expected = referenceMatmul(a, b, m: 12, k: 8, n: 10)
        let exact = try cpu.matmul(cpu.tensor(a, shape: [12, 8], dtype: .float64), cpu.tensor(b, shape: [8, 10], dtype: .float64))
        assertClose(try cpu.doubles(exact), expected, rtol: 1e-12, atol: 1e-12)
        let half = try cpu.matmul(cpu.tensor(a, shape: [12, 8], dtype: .bfloat16), cpu.tensor(b, shape: [8, 10], dtype: .bfloat16))
        XCTAssertEqual(half.dtype, .bfloat16)
        assertClose(try cpu.doubles(half), expected, rtol: 2e-2, atol: 5e-2)
    }

    func testLeadingDimensionsAreRows() throws {
        let x = try randomTensor(cpu, [2, 3, 8], seed: 5)
        let w = try randomTensor(cpu, [4, 8], seed: 6)
        let y = try cpu.matmul(x, w, transposeB: true)
        XCTAssertEqual(y.shape, [2, 3, 4])
    }

    func testShapeErrorsNameTheShapes() throws {
        let a = try cpu.zeros([3, 4], dtype: .float32)
        let b = try cpu.zeros([5, 6], dtype: .float32)
        assertThrowsTensorError(try cpu.matmul(a, b)) { error in
            guard case .shapeMismatch(let op, let shapes, _) = error else { return false }
            return op == "gemm" && shapes == [[3, 4], [5, 6]] && error.description.contains("[3, 4]")
        }
        assertThrowsTensorError(try cpu.matmul(a, cpu.zeros([4, 2], dtype: .float64))) { error in
            if case .dtypeMismatch = error { return true }
            return false
        }
    }

    func testTransposeAndConcatenate() throws {
        let x = randomValues(37 * 45, seed: 9)
        let t = try cpu.transpose(cpu.tensor(x, shape: [37, 45], dtype: .float32))
        XCTAssertEqual(t.shape, [45, 37])
        assertClose(try cpu.doubles(t), referenceTranspose(x.map { Double(Float($0)) }, rows: 37, columns: 45), rtol: 0, atol: 0)
        let joined = try cpu.concatenateRows([cpu.tensor([1, 2] as [Float], shape: [1, 2], dtype: .float32), cpu.tensor([3, 4, 5, 6] as [Float], shape: [2, 2], dtype: .float32)])
        XCTAssertEqual(try cpu.floats(joined), [1, 2, 3, 4, 5, 6])
    }

    /// copyRows writes a range of rows in place (the KV cache's write and read), any rank seen as [rows, rest], and
    /// refuses ranges outside either tensor, other widths and other dtypes.
    func testSplitColumns() throws {
        let cpu = CPUBackend()
        let values: [Float] = (0..<24).map { Float($0) }
        let x = try cpu.tensor(values, shape: [3, 8], dtype: .float32)
        let parts = try cpu.splitColumns(x, widths: [3, 0, 4, 1])
        XCTAssertEqual(parts.map { $0.shape }, [[3, 3], [3, 0], [3, 4], [3, 1]])
        XCTAssertEqual(try cpu.floats(parts[0]), [0, 1, 2, 8, 9, 10, 16, 17, 18])
        XCTAssertEqual(try cpu.floats(parts[2]), [3, 4, 5, 6, 11, 12, 13, 14, 19, 20, 21, 22])
        XCTAssertEqual(try cpu.floats(parts[3]), [7, 15, 23])
        for widths in [[3, 4], [5, 4], [9, -1], []] {
            XCTAssertThrowsError(try cpu.splitColumns(x, widths: widths)) { XCTAssertTrue("\($0)".contains("splitColumns"), "\($0)") }
        }
    }

    func testCopyRows() throws {
        let source = try cpu.tensor((0..<12).map(Float.init), shape: [4, 3], dtype: .bfloat16)
        let target = try cpu.zeros([5, 1, 3], dtype: .bfloat16)
        try cpu.copyRows(source, 1..<3, into: target, at: 2)
        XCTAssertEqual(try cpu.floats(target), [0, 0, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8, 0, 0, 0])
        try cpu.copyRows(source, 0..<0, into: target, at: 5)
        try cpu.moveRows(source, from: [0, 3], into: target, to: [4, 0])
        XCTAssertEqual(try cpu.floats(target), [9, 10, 11, 0, 0, 0, 3, 4, 5, 6, 7, 8, 0, 1, 2])
        let refusals: [(() throws -> Void, String)] = [
            ({ try self.cpu.copyRows(source, 2..<5, into: target, at: 0) }, "fall outside"),
            ({ try self.cpu.copyRows(source, 0..<2, into: target, at: 4) }, "fall outside"),
            ({ try self.cpu.copyRows(source, 0..<1, into: self.cpu.zeros([2, 4], dtype: .bfloat16), at: 0) }, "equal widths"),
            ({ try self.cpu.copyRows(source, 0..<1, into: self.cpu.zeros([2, 3], dtype: .float32), at: 0) }, "element types"),
            ({ try self.cpu.moveRows(source, from: [4], into: target, to: [0]) }, "outside its tensor"),
            ({ try self.cpu.moveRows(source, from: [0, 1], into: target, to: [5]) }, "as many sources as targets"),
        ]
        for (copy, message) in refusals {
            XCTAssertThrowsError(try copy()) { XCTAssertTrue("\($0)".lowercased().contains(message), "\($0)") }
        }
    }
}
