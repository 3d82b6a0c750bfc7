import Foundation
import SlopeCore
import SlopeTestSupport
import XCTest

/// RMSNorm, rotary embeddings and attention: finite-difference gradients (Float64) and a plain reference.
final class AttentionOpTests: XCTestCase {
    let cpu = CPUBackend()

    func testRMSNormInputAndWeight() throws {
        let weight = try randomTensor(cpu, [6], dtype: .float64, seed: 1)
        try checkGradient(cpu, shape: [4, 6], seed: 2, "dx",
            forward: { try self.cpu.rmsNorm($0, weight: weight, epsilon: 1e-6).output },
            backward: { x, dy in
                let saved = try self.cpu.rmsNorm(x, weight: weight, epsilon: 1e-6)
                return try self.cpu.rmsNormBackward(dy, input: x, weight: weight, saved: saved).input
            })
        let x = try randomTensor(cpu, [4, 6], dtype: .float64, seed: 3)
        try checkGradient(cpu, shape: [6], seed: 4, "dweight",
            forward: { try self.cpu.rmsNorm(x, weight: $0, epsilon: 1e-6).output },
            backward: { w, dy in
                let saved = try self.cpu.rmsNorm(x, weight: w, epsilon: 1e-6)
                return try self.cpu.rmsNormBackward(dy, input: x, weight: w, saved: saved).weight
            })
        // y = x/rms·w: for x = [3, 4] and w = 1 the row's rms is √12.5.
        let y = try cpu.rmsNorm(cpu.tensor([3, 4] as [Double], shape: [1, 2], dtype: .float64),
                                weight: cpu.tensor([1, 1] as [Double], shape: [2], dtype: .float64), epsilon: 0)
        assertClose(try cpu.doubles(y.output), [3 / 12.5.squareRoot(), 4 / 12.5.squareRoot()], rtol: 1e-12)
    }

    func testRotaryEmbeddingRotatesPairsAndItsBackwardIsTheInverse() throws {
        let layout = RotaryLayout(sequenceLength: 3, positionOffset: 2, headDimension: 4, base: 10_000)
        // [2 sequences · 3 positions, 2 heads · 4]
        try checkGradient(cpu, shape: [6, 8], seed: 5, "rope",
            forward: { try self.cpu.rotaryEmbedding($0, layout: layout, inverse: false) },
            backward: { _, dy in try self.cpu.rotaryEmbedding(dy, layout: layout, inverse: true) })
        // Row 1 is position 3: element 0 and 2 rotate by 3 rad, elements 1 and 3 by 3·10000^(−1/2).
        var values = [Double](repeating: 0, count: 48)
        values[8] = 1; values[10] = 0; values[9] = 0; values[11] = 1
        let y = try cpu.doubles(cpu.rotaryEmbedding(cpu.tensor(values, shape: [6, 8], dtype: .float64), layout: layout, inverse: false))
        let slow = 3 * 0.01
        assertClose(Array(y[8..<12]), [cos(3.0), -sin(slow), sin(3.0), cos(slow)], rtol: 1e-12, atol: 1e-12)
    }

    /// Plain softmax(QKᵀ·scale + causal mask)·V per (batch, head), in Double; each probability dropped (or scaled by
    /// 1 / (1 − p)) as ``DropoutMask`` decides its index ((b·Hq + h)·Tq + i)·Tk + j.
    func referenceAttention(_ q: [Double], _ k: [Double], _ v: [Double], _ s: AttentionShape) -> [Double] {
        let d = s.headDimension
        var out = [Double](repeating: 0, count: q.count)
        for b in 0..<s.batch {
            for h in 0..<s.queryHeads {
                let kvh = h / s.groupSize
                for i in 0..<s.queryLength {
                    let qi = (b * s.queryLength + i) * s.queryHeads * d + h * d
                    var scores: [Double] = []
                    for j in 0..<s.keyLength {
                        let kj = (b * s.keyLength + j) * s.keyValueHeads * d + kvh * d
                        let masked = (s.causal && j > s.keyLength - s.queryLength + i) || j >= (s.keyLengths?[b] ?? s.keyLength)
                        scores.append(masked ? -.infinity : (0..<d).reduce(0) { $0 + q[qi + $1] * k[kj + $1] } * Double(s.scale))
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let total = e.reduce(0, +)
                    for j in 0..<s.keyLength {
                        let vj = (b * s.keyLength + j) * s.keyValueHeads * d + kvh * d
                        var z = 1.0
                        if let dropout = s.dropout {
                            let index = ((b * s.queryHeads + h) * s.queryLength + i) * s.keyLength + j
                            let threshold = DropoutMask.threshold(probability: dropout.probability)
                            z = DropoutMask.keeps(seed: dropout.seed, index: index, threshold: threshold) ? 1 / (1 - dropout.probability) : 0
                        }
                        for x in 0..<d { out[qi + x] += e[j] / total * z * v[vj + x] }
                    }
                }
            }
        }
        return out
    }

    let shapes = [
        AttentionShape(batch: 2, queryLength: 5, queryHeads: 2, headDimension: 3),  // causal self-attention
        AttentionShape(batch: 1, queryLength: 3, queryHeads: 4, keyValueHeads: 2, headDimension: 2),  // grouped-query
        AttentionShape(batch: 2, queryLength: 2, keyLength: 5, queryHeads: 2, keyValueHeads: 1, headDimension: 2),  // KV cache
        AttentionShape(batch: 1, queryLength: 3, keyLength: 4, queryHeads: 1, headDimension: 2, causal: false, scale: 0.7),
        // An encoder's padded batch: bidirectional, keys past each sequence's length never attended to.
        AttentionShape(batch: 3, queryLength: 4, queryHeads: 2, headDimension: 3, causal: false, keyLengths: [4, 2, 1]),
        AttentionShape(batch: 2, queryLength: 4, queryHeads: 2, keyValueHeads: 1, headDimension: 2, keyLengths: [3, 4]),  // causal and padded
        // Attention dropout (BERT's training): an encoder's padded batch, and causal grouped-query heads.
        AttentionShape(batch: 3, queryLength: 4, queryHeads: 2, headDimension: 3, causal: false, keyLengths: [4, 2, 3],
                       dropout: SeededDropout(probability: 0.3, seed: 77)),
        AttentionShape(batch: 2, queryLength: 5, queryHeads: 4, keyValueHeads: 2, headDimension: 2,
                       dropout: SeededDropout(probability: 0.5, seed: 78)),
    ]

    func tensors(_ s: AttentionShape, seed: UInt64) throws -> (Tensor, Tensor, Tensor) {
        let d = s.headDimension
        return (
            try randomTensor(cpu, [s.batch * s.queryLength, s.queryHeads * d], dtype: .float64, seed: seed),
            try randomTensor(cpu, [s.batch * s.keyLength, s.keyValueHeads * d], dtype: .float64, seed: seed + 1),
            try randomTensor(cpu, [s.batch * s.keyLength, s.keyValueHeads * d], dtype: .float64, seed: seed + 2))
    }

    func testAttentionMatchesTheReference() throws {
        for (n, s) in shapes.enumerated() {
            let (q, k, v) = try tensors(s, seed: UInt64(10 * n))
            let result = try cpu.attention(query: q, key: k, value: v, shape: s)
            assertClose(try cpu.doubles(result.output), referenceAttention(try cpu.doubles(q), try cpu.doubles(k), try cpu.doubles(v), s),
                        rtol: 1e-12, atol: 1e-12, "shape \(n)")
            // float32 storage computes in Float: same numbers to single precision.
            let q32 = try cpu.cast(q, to: .float32), k32 = try cpu.cast(k, to: .float32), v32 = try cpu.cast(v, to: .float32)
            let result32 = try cpu.attention(query: q32, key: k32, value: v32, shape: s)
            assertClose(try cpu.doubles(result32.output), try cpu.doubles(result.output), rtol: 1e-5, atol: 1e-6, "float32 \(n)")
            if s.dropout != nil {  // the mask drops something, and the log-sum-exp is the undropped softmax's
                var plain = s
                plain.dropout = nil
                let undropped = try cpu.attention(query: q, key: k, value: v, shape: plain)
                XCTAssertNotEqual(try cpu.doubles(undropped.output), try cpu.doubles(result.output), "shape \(n)")
                XCTAssertEqual(try cpu.doubles(undropped.logSumExp), try cpu.doubles(result.logSumExp), "shape \(n)")
            }
        }
    }

    func testAttentionGradients() throws {
        for (n, s) in shapes.enumerated() {
            let (q, k, v) = try tensors(s, seed: UInt64(100 + 10 * n))
            func backward(_ dy: Tensor, _ q: Tensor, _ k: Tensor, _ v: Tensor) throws -> AttentionGradients {
                let saved = try cpu.attention(query: q, key: k, value: v, shape: s)
                return try cpu.attentionBackward(dy, query: q, key: k, value: v, saved: saved, shape: s)
            }
            try checkGradient(cpu, shape: q.shape, seed: 200 + UInt64(n), "dq \(n)",
                forward: { try self.cpu.attention(query: $0, key: k, value: v, shape: s).output },
                backward: { q, dy in try backward(dy, q, k, v).query })
            try checkGradient(cpu, shape: k.shape, seed: 300 + UInt64(n), "dk \(n)",
                forward: { try self.cpu.attention(query: q, key: $0, value: v, shape: s).output },
                backward: { k, dy in try backward(dy, q, k, v).key })
            try checkGradient(cpu, shape: v.shape, seed: 400 + UInt64(n), "dv \(n)",
                forward: { try self.cpu.attention(query: q, key: k, value: $0, shape: s).output },
                backward: { v, dy in try backward(dy, q, k, v).value })
        }
    }

    /// Packed rows (an encoder's unpadded rows, sequence after sequence, then a row no sequence owns) give each real
    /// row the output and gradients the padded layout gives it, with dropout too; the unowned row's are zero.
    func testPackedRowsMatchThePaddedLayout() throws {
        let lengths = [4, 2, 3]
        var padded = AttentionShape(batch: 3, queryLength: 4, queryHeads: 4, keyValueHeads: 2, headDimension: 3, causal: false,
                                    keyLengths: lengths, dropout: SeededDropout(probability: 0.3, seed: 9))
        for causal in [false, true] {
            padded.causal = causal
            let (q, k, v) = try tensors(padded, seed: 500)
            let dOut = try randomTensor(cpu, q.shape, dtype: .float64, seed: 504)
            let real = lengths.enumerated().flatMap { b, length in (0..<length).map { b * 4 + $0 } }
            func pack(_ t: Tensor) throws -> Tensor {
                let width = t.shape[1], values = try cpu.doubles(t)
                return try cpu.tensor((real + [3 * 4 - 1]).flatMap { values[($0 * width)..<(($0 + 1) * width)] }, shape: [real.count + 1, width], dtype: .float64)
            }
            var packed = padded
            packed.packedRows = real.count + 1
            let (pq, pk, pv, pdOut) = (try pack(q), try pack(k), try pack(v), try pack(dOut))
            let expected = try cpu.attention(query: q, key: k, value: v, shape: padded)
            let result = try cpu.attention(query: pq, key: pk, value: pv, shape: packed)
            let gradients = try cpu.attentionBackward(pdOut, query: pq, key: pk, value: pv, saved: result, shape: packed)
            var dOutPadded = try cpu.doubles(dOut)
            for row in Set(0..<12).subtracting(real) { for c in 0..<(4 * 3) { dOutPadded[row * 12 + c] = 0 } }  // (padding rows: no gradient)
            let expectedGradients = try cpu.attentionBackward(
                cpu.tensor(dOutPadded, shape: dOut.shape, dtype: .float64), query: q, key: k, value: v, saved: expected, shape: padded)
            for (name, got, want) in [("output", result.output, expected.output), ("dq", gradients.query, expectedGradients.query),
                                      ("dk", gradients.key, expectedGradients.key), ("dv", gradients.value, expectedGradients.value)] {
                let width = got.shape[1]
                let (g, w) = (try cpu.doubles(got), try cpu.doubles(pack(want)))
                assertClose(Array(g[0..<(real.count * width)]), Array(w[0..<(real.count * width)]), rtol: 1e-12, atol: 1e-12, "\(name), causal \(causal)")
                XCTAssertEqual(Array(g[(real.count * width)...]), [Double](repeating: 0, count: width), "\(name): the row no sequence owns")
            }
        }
        var mismatched = padded
        mismatched.packedRows = 8  // fewer than the 9 rows the sequences fill
        let rows = try cpu.zeros([8, 12], dtype: .float32), kv = try cpu.zeros([8, 6], dtype: .float32)
        assertThrowsTensorError(try cpu.attention(query: rows, key: kv, value: kv, shape: mismatched)) {
            if case .invalidArgument(_, let reason) = $0 { return reason.contains("packed rows") } else { return false }
        }
    }

    func testBadAttentionShapesAreRejected() throws {
        let q = try cpu.zeros([4, 6], dtype: .float32)
        let k = try cpu.zeros([4, 4], dtype: .float32)
        assertThrowsTensorError(try cpu.attention(query: q, key: k, value: k, shape: AttentionShape(batch: 1, queryLength: 4, queryHeads: 3, keyValueHeads: 2, headDimension: 2))) {
            if case .invalidArgument = $0 { return true } else { return false }
        }
        assertThrowsTensorError(try cpu.attention(query: q, key: k, value: k, shape: AttentionShape(batch: 1, queryLength: 4, queryHeads: 3, headDimension: 2))) {
            if case .shapeMismatch = $0 { return true } else { return false }
        }
        for lengths in [[0], [5], [2, 2]] {  // a key length per sequence, each in 1 … keyLength
            assertThrowsTensorError(try cpu.attention(query: q, key: k, value: k, shape: AttentionShape(
                batch: 1, queryLength: 4, queryHeads: 3, headDimension: 2, keyLengths: lengths))) {
                if case .invalidArgument(_, let reason) = $0 { return reason.contains("key length in 1 … 4") } else { return false }
            }
        }
        for probability in [-0.1, 1] {
            assertThrowsTensorError(try cpu.attention(query: q, key: q, value: q, shape: AttentionShape(
                batch: 1, queryLength: 4, queryHeads: 3, headDimension: 2, dropout: SeededDropout(probability: probability, seed: 1)))) {
                if case .invalidArgument(_, let reason) = $0 { return reason.contains("dropout probability must be in [0, 1)") } else { return false }
            }
        }
        assertThrowsTensorError(try cpu.rotaryEmbedding(q, layout: RotaryLayout(sequenceLength: 4, headDimension: 3, base: 10_000), inverse: false)) {
            if case .shapeMismatch = $0 { return true } else { return false }
        }
    }
}
