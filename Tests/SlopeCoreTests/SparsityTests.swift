import SlopeCore
import SlopeTestSupport
import XCTest

final class SparsityTests: XCTestCase {
    let cpu = CPUBackend()
    let patterns = [(2, 4), (1, 4), (2, 8), (4, 8)].map { try! NMPattern(n: $0.0, m: $0.1) }

    override func tearDown() { CPUBackend.useSIMDLevel(nil) }

    /// Offsets of each group's M elements in a row-major `[rows, columns]` matrix.
    private func groups(rows: Int, columns: Int, m: Int, _ direction: PruneDirection) -> [[Int]] {
        switch direction {
        case .rowWise:
            return (0..<rows).flatMap { r in (0..<(columns / m)).map { g in (0..<m).map { r * columns + g * m + $0 } } }
        case .columnWise:
            return (0..<(rows / m)).flatMap { g in (0..<columns).map { c in (0..<m).map { (g * m + $0) * columns + c } } }
        }
    }

    func testPruneKeepsExactlyNLargestPerGroupAndIsIdempotent() throws {
        for pattern in patterns {
            for direction in [PruneDirection.rowWise, .columnWise] {
                let (rows, columns) = (16, 24)
                let x = randomValues(rows * columns, seed: UInt64(pattern.n * 10 + pattern.m))
                let xt = try cpu.tensor(x, shape: [rows, columns], dtype: .float32)
                let mask = try cpu.uint8s(cpu.pruneMask(xt, pattern: pattern, direction: direction, within: nil))
                for group in groups(rows: rows, columns: columns, m: pattern.m, direction) {
                    let kept = group.filter { mask[$0] == 1 }
                    let dropped = group.filter { mask[$0] == 0 }
                    XCTAssertEqual(kept.count, pattern.n, "\(pattern) \(direction)")
                    let smallestKept = kept.map { abs(Float(x[$0])) }.min()!
                    let largestDropped = dropped.map { abs(Float(x[$0])) }.max()!
                    XCTAssertGreaterThanOrEqual(smallestKept, largestDropped, "\(pattern) \(direction)")
                }
                XCTAssertTrue(mask.allSatisfy { $0 <= 1 })
                // Pruning the pruned matrix again selects the same positions.
                let pruned = try cpu.applyMask(xt, mask: cpu.tensor(mask, shape: [rows, columns]))
                XCTAssertEqual(try cpu.uint8s(cpu.pruneMask(pruned, pattern: pattern, direction: direction, within: nil)), mask)
            }
        }
    }

    func testTiesKeepTheLowerIndex() throws {
        let x = try cpu.tensor([1, 1, 1, 1, -3, 2, -2, 0] as [Float], shape: [1, 8], dtype: .float32)
        XCTAssertEqual(try cpu.uint8s(cpu.pruneMask(x, pattern: .twoFour, direction: .rowWise, within: nil)), [1, 1, 0, 0, 1, 1, 0, 0])
    }

    func testColumnMaskWithinRowMaskIsASubsetOfTheLargestCandidates() throws {
        for pattern in patterns {
            let (rows, columns) = (16, 16)
            let x = randomValues(rows * columns, seed: 40 + UInt64(pattern.m))
            let xt = try cpu.tensor(x, shape: [rows, columns], dtype: .float32)
            let rowMask = try cpu.pruneMask(xt, pattern: pattern, direction: .rowWise, within: nil)
            let mr = try cpu.uint8s(rowMask)
            let mc = try cpu.uint8s(cpu.pruneMask(cpu.applyMask(xt, mask: rowMask), pattern: pattern, direction: .columnWise, within: rowMask))
            for i in mc.indices where mc[i] == 1 { XCTAssertEqual(mr[i], 1, "Mc ⊆ Mr at \(i) for \(pattern)") }
            for group in groups(rows: rows, columns: columns, m: pattern.m, .columnWise) {
                let candidates = group.filter { mr[$0] == 1 }
                let kept = group.filter { mc[$0] == 1 }
                XCTAssertEqual(kept.count, min(pattern.n, candidates.count))
                let others = candidates.filter { mc[$0] == 0 }
                if let smallest = kept.map({ abs(Float(x[$0])) }).min(), let largest = others.map({ abs(Float(x[$0])) }).max() {
                    XCTAssertGreaterThanOrEqual(smallest, largest)
                }
            }
        }
    }

    func testCompressRoundTrips() throws {
        for pattern in patterns {
            for dtype in [DType.float32, .float64, .bfloat16] {
                let x = try randomTensor(cpu, [8, 32], dtype: dtype, seed: 50)
                let compressed = try cpu.compress(x, pattern: pattern, mask: nil)
                XCTAssertEqual(compressed.values.shape, [8, 32 / pattern.m * pattern.n])
                XCTAssertEqual(compressed.values.dtype, dtype)
                let mask = try cpu.pruneMask(x, pattern: pattern, direction: .rowWise, within: nil)
                try assertClose(cpu.decompress(compressed), cpu.applyMask(x, mask: mask), rtol: 0, atol: 0, backend: cpu)
                XCTAssertEqual(try cpu.uint8s(cpu.mask(of: compressed)), try cpu.uint8s(mask))
                let again = try cpu.compress(cpu.decompress(compressed), pattern: pattern, mask: mask)
                XCTAssertEqual(try cpu.uint8s(again.indices), try cpu.uint8s(compressed.indices))
                try assertClose(again.values, compressed.values, rtol: 0, atol: 0, backend: cpu)
                try assertClose(cpu.gatherCompressed(x, layout: compressed), compressed.values, rtol: 0, atol: 0, backend: cpu)
                let doubled = try cpu.cast(compressed.values, to: dtype)
                try cpu.accumulateGathered(x, layout: compressed, into: doubled)
                try assertClose(doubled, cpu.scale(compressed.values, by: 2), rtol: 1e-6, atol: 0, backend: cpu)
            }
        }
    }

    func testCompressPadsSparseGroupsWithZerosAndRejectsOverfullMasks() throws {
        let x = try cpu.tensor([5, 6, 7, 8] as [Float], shape: [1, 4], dtype: .float32)
        let oneKept = try cpu.compress(x, pattern: .twoFour, mask: cpu.tensor([0, 0, 1, 0] as [UInt8], shape: [1, 4]))
        XCTAssertEqual(try cpu.floats(oneKept.values), [0, 7])
        XCTAssertEqual(try cpu.uint8s(oneKept.indices), [0, 2])
        XCTAssertEqual(try cpu.floats(cpu.decompress(oneKept)), [0, 0, 7, 0])
        assertThrowsTensorError(try cpu.compress(x, pattern: .twoFour, mask: cpu.tensor([1, 1, 1, 0] as [UInt8], shape: [1, 4]))) { error in
            error.description.contains("more than 2 of 4")
        }
    }

    func testSparseMatmulEqualsDenseMaskedMatmul() throws {
        for level in CPUBackend.SIMDLevel.allCases {
            CPUBackend.useSIMDLevel(level)
            for pattern in patterns {
                for (tokens, rows, columns) in [(1, 8, 8), (7, 12, 16), (33, 20, 64), (70, 64, 96)] {
                    let x = try randomTensor(cpu, [tokens, columns], seed: UInt64(tokens + rows))
                    let w = try randomTensor(cpu, [rows, columns], seed: UInt64(columns))
                    let bias = try randomTensor(cpu, [rows], seed: 3)
                    let s = try cpu.compress(w, pattern: pattern, mask: nil)
                    let expected = try cpu.gemm(x, cpu.decompress(s), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
                    try assertClose(cpu.sparseMatmul(x, s, bias: bias), expected, rtol: 1e-5, atol: 1e-5, backend: cpu,
                                    "\(level) \(pattern) \(tokens)x\(rows)x\(columns)")
                }
            }
        }
    }

    func testSparseMatmulInDoubleAndBFloat16() throws {
        let x = try randomTensor(cpu, [5, 16], dtype: .float64, seed: 60)
        let w = try randomTensor(cpu, [8, 16], dtype: .float64, seed: 61)
        let s = try cpu.compress(w, pattern: .twoFour, mask: nil)
        try assertClose(cpu.sparseMatmul(x, s, bias: nil), cpu.matmul(x, cpu.decompress(s), transposeB: true), rtol: 1e-13, atol: 1e-13, backend: cpu)
        let xb = try cpu.cast(x, to: .bfloat16), sb = try cpu.compress(cpu.cast(w, to: .bfloat16), pattern: .twoFour, mask: nil)
        let yb = try cpu.sparseMatmul(xb, sb, bias: nil)
        XCTAssertEqual(yb.dtype, .bfloat16)
        try assertClose(yb, cpu.matmul(x, cpu.decompress(s), transposeB: true), rtol: 3e-2, atol: 5e-2, backend: cpu)
    }

    func testDoublePrunedTransposeAndRefresh() throws {
        for pattern in patterns {
            let (dout, din) = (16, 24)
            let dense = try randomTensor(cpu, [dout, din], seed: 70 + UInt64(pattern.n))
            let w = try cpu.compress(dense, pattern: pattern, mask: nil)
            let t = try cpu.doublePrunedTranspose(of: w)
            XCTAssertEqual(t.shape, [din, dout])
            let pruned = try cpu.decompress(w)
            let mc = try cpu.pruneMask(pruned, pattern: pattern, direction: .columnWise, within: cpu.mask(of: w))
            try assertClose(cpu.decompress(t), cpu.transpose(cpu.applyMask(pruned, mask: mc)), rtol: 0, atol: 0, backend: cpu, "\(pattern)")
            // New values of W flow into the transpose under the same Mc.
            let newValues = try randomTensor(cpu, w.values.shape, seed: 80)
            try cpu.copy(newValues, into: w.values)
            try cpu.refreshDoublePrunedTranspose(t, from: w)
            try assertClose(cpu.decompress(t), cpu.transpose(cpu.applyMask(cpu.decompress(w), mask: mc)), rtol: 0, atol: 0, backend: cpu, "refresh \(pattern)")
        }
    }

    func testBadPatternsAndIndivisibleShapesRaiseDocumentedErrors() throws {
        for (n, m) in [(0, 4), (4, 4), (5, 4), (2, 16), (1, 3)] {
            XCTAssertThrowsError(try NMPattern(n: n, m: m)) { error in
                guard case TensorError.invalidPattern(n, m, _) = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try NMPattern(parsing: "2-4"))
        XCTAssertEqual(try NMPattern(parsing: "2:8"), try NMPattern(n: 2, m: 8))
        let x = try cpu.zeros([8, 10], dtype: .float32)
        assertThrowsTensorError(try cpu.pruneMask(x, pattern: .twoFour, direction: .rowWise, within: nil)) { error in
            guard case .notDivisible(_, _, 10, 4) = error else { return false }
            return error.description.contains("not divisible by M = 4")
        }
        let w = try cpu.compress(cpu.zeros([6, 8], dtype: .float32), pattern: .twoFour, mask: nil)
        assertThrowsTensorError(try cpu.doublePrunedTranspose(of: w)) { error in
            if case .notDivisible(_, _, 6, 4) = error { return true }
            return false
        }
        assertThrowsTensorError(try cpu.sparseMatmul(cpu.zeros([2, 4], dtype: .float32), w, bias: nil)) { error in
            if case .shapeMismatch("sparseMatmul", _, _) = error { return true }
            return false
        }
    }
}
