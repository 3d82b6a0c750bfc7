import CCUDA
import SlopeCore

/// Attention on tensor cores: per batch element, scores `S = scale·Q·Kᵀ` ([Hq, Tq, Tk], float32) and
/// `O = P·V` are strided-batched cuBLASLt GEMMs over the key/value heads (one call per query head of a
/// group), with the softmax in a kernel between them. Backward recomputes P from the saved log-sum-exp.
/// Causal products compute the masked half too (2× the needed FLOPs), still far faster than CUDA cores.
extension CUDABackend {
    /// Element offsets of head-strided operands within one batch element.
    private struct HeadLayout {
        let s: AttentionShape
        var group: Int { s.groupSize }
        var d: Int { s.headDimension }
        /// Query-shaped tensors ([B·Tq, Hq·D]): batch element b, query head g of each group.
        func query(_ b: Int, _ g: Int) -> Int { b * s.queryLength * s.queryHeads * d + g * d }
        /// Key/value-shaped tensors ([B·Tk, Hkv·D]).
        func keyValue(_ b: Int) -> Int { b * s.keyLength * s.keyValueHeads * d }
        /// Scores of query head g of each group, within one batch element's [Hq, Tq, Tk].
        func scores(_ g: Int) -> Int { g * s.queryLength * s.keyLength }
        var scoreStride: Int { group * s.queryLength * s.keyLength }
    }

    /// A batched product over the key/value heads, operands given by element offsets.
    private func headGEMM(
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, dtype: DType, output: DType, alpha: Float, beta: Float,
        a: (Tensor, Int, ld: Int, stride: Int), b: (Tensor, Int, ld: Int, stride: Int), c: (Tensor, Int, ld: Int, stride: Int),
        heads: Int
    ) throws {
        var key = CuBLASLtGEMM.Key(m: m, n: n, k: k, transA: transA, transB: transB, dtype: dtype)
        key.outputType = output
        (key.lda, key.ldb, key.ldc) = (a.ld, b.ld, c.ld)
        (key.batch, key.strideA, key.strideB, key.strideC) = (heads, a.stride, b.stride, c.stride)
        // The largest power of two (≤ 256 bytes) dividing every offset, row stride and batch stride.
        key.alignment = [a, b, c].reduce(256) { alignment, operand in
            [operand.1, operand.ld, operand.stride].reduce(alignment) { current, elements in
                let bytes = elements * operand.0.dtype.byteSize
                var power = current
                while power > 1, bytes % power != 0 { power /= 2 }
                return power
            }
        }
        func pointer(_ operand: (Tensor, Int, ld: Int, stride: Int)) throws -> CUdeviceptr {
            try address(operand.0, "attention") + UInt64(operand.1 * operand.0.dtype.byteSize)
        }
        try blas.run(key, alpha: alpha, a: pointer(a), b: pointer(b), beta: beta, c: pointer(c))
    }

    /// Query rows processed together and the keys they can see: causal attention is cut into up to four
    /// chunks of queries so the products skip most of the masked upper triangle (10/16 of the full work).
    private struct QueryChunk {
        let first: Int, count: Int
        /// Keys 0..<keys are visible to some query of the chunk.
        let keys: Int

        static func chunks(_ s: AttentionShape) -> [QueryChunk] {
            let parts = s.causal && s.queryLength >= 256 ? 4 : 1
            let size = (s.queryLength + parts - 1) / parts
            return stride(from: 0, to: s.queryLength, by: size).map { first in
                let count = min(size, s.queryLength - first)
                return QueryChunk(first: first, count: count, keys: s.causal ? s.keyLength - s.queryLength + first + count : s.keyLength)
            }
        }
    }

    /// `scores[g] = scale·Q_h·K_jᵀ` for every head of batch element `b` (h = j·group + g), chunk rows only.
    private func computeScores(_ q: Tensor, _ k: Tensor, _ scores: Tensor, _ b: Int, _ chunk: QueryChunk, _ layout: HeadLayout) throws {
        let s = layout.s
        for g in 0..<layout.group {
            try headGEMM(
                m: chunk.count, n: chunk.keys, k: layout.d, transA: false, transB: true, dtype: q.dtype, output: .float32,
                alpha: s.scale, beta: 0,
                a: (q, layout.query(b, g) + chunk.first * s.queryHeads * layout.d, s.queryHeads * layout.d, layout.group * layout.d),
                b: (k, layout.keyValue(b), s.keyValueHeads * layout.d, layout.d),
                c: (scores, layout.scores(g) + chunk.first * s.keyLength, s.keyLength, layout.scoreStride), heads: s.keyValueHeads)
        }
    }

    /// Batch element `b`'s real keys (padding past them is masked), for the row kernels.
    private func keyLimit(_ s: AttentionShape, _ b: Int) -> KernelArgument { .int64(Int64(s.keyLengths?[b] ?? s.keyLength)) }

    private func rowArguments(_ s: AttentionShape, _ b: Int) -> [KernelArgument] {
        [.int64(Int64(s.queryLength)), .int64(Int64(s.keyLength)), .int64(Int64(s.queryHeads)), .int64(Int64(b))]
    }

    func gemmAttention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        let layout = HeadLayout(s: s)
        let out = try newTensor(query.shape, dtype: query.dtype)
        let lse = try newTensor([s.batch * s.queryLength, s.queryHeads], dtype: .float32)
        let scores = try newTensor([s.queryHeads, s.queryLength, s.keyLength], dtype: .float32)
        let probabilities = try newTensor([s.queryHeads, s.queryLength, s.keyLength], dtype: query.dtype)
        let (qRow, kvRow) = (s.queryHeads * layout.d, s.keyValueHeads * layout.d)
        for b in 0..<s.batch {
            for chunk in QueryChunk.chunks(s) { try computeScores(query, key, scores, b, chunk, layout) }
            try launch(.attention, "attention_softmax_rows", dtype: query.dtype, grid: (s.queryHeads * s.queryLength, 1, 1), [
                .pointer(address(scores, "attention")), .pointer(address(probabilities, "attention")), .pointer(address(lse, "attention")),
            ] + rowArguments(s, b) + [.int32(s.causal ? 1 : 0), keyLimit(s, b)] + Self.dropoutArguments(s.dropout))
            for chunk in QueryChunk.chunks(s) {
                for g in 0..<layout.group {  // O_h = P_h·V_j (P dropped where the shape asks)
                    try headGEMM(
                        m: chunk.count, n: layout.d, k: chunk.keys, transA: false, transB: false, dtype: query.dtype, output: query.dtype,
                        alpha: 1, beta: 0,
                        a: (probabilities, layout.scores(g) + chunk.first * s.keyLength, s.keyLength, layout.scoreStride),
                        b: (value, layout.keyValue(b), kvRow, layout.d),
                        c: (out, layout.query(b, g) + chunk.first * qRow, qRow, layout.group * layout.d), heads: s.keyValueHeads)
                }
            }
        }
        return AttentionOutput(output: out, logSumExp: lse)
    }

    func gemmAttentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, delta: Tensor, shape s: AttentionShape
    ) throws -> AttentionGradients {
        let layout = HeadLayout(s: s)
        let dtype = query.dtype
        // dK and dV accumulate over query heads and chunks (beta = 1), so they start at zero.
        let (dq, dk, dv) = (try newTensor(query.shape, dtype: dtype), try zeros(key.shape, dtype: dtype), try zeros(value.shape, dtype: dtype))
        let scores = try newTensor([s.queryHeads, s.queryLength, s.keyLength], dtype: .float32)
        let probabilities = try newTensor([s.queryHeads, s.queryLength, s.keyLength], dtype: dtype)
        // With dropout, dV takes the dropped probabilities while dS needs the undropped ones: both are kept.
        let dropped = (s.dropout?.probability ?? 0) > 0 ? try newTensor(probabilities.shape, dtype: dtype) : nil
        let (qRow, kvRow) = (s.queryHeads * layout.d, s.keyValueHeads * layout.d)
        let (qStride, kvStride) = (layout.group * layout.d, layout.d)
        let chunks = QueryChunk.chunks(s)
        for b in 0..<s.batch {
            for chunk in chunks { try computeScores(query, key, scores, b, chunk, layout) }
            try launch(.attention, "attention_probabilities", dtype: dtype, grid: (s.queryHeads * s.queryLength, 1, 1), [
                .pointer(address(scores, "attentionBackward")), .pointer(address(probabilities, "attentionBackward")),
                .pointer(address(saved.logSumExp, "attentionBackward")),
            ] + rowArguments(s, b) + [.int32(s.causal ? 1 : 0), keyLimit(s, b), .optionalPointer(try address(ifAny: dropped, "attentionBackward"))]
                + Self.dropoutArguments(s.dropout))
            for chunk in chunks {
                let (pRows, qRows) = (chunk.first * s.keyLength, chunk.first * qRow)
                for g in 0..<layout.group {
                    // dV_j += P_hᵀ·dO_h (P as the forward pass dropped it) over the group's query heads and the chunks.
                    try headGEMM(
                        m: chunk.keys, n: layout.d, k: chunk.count, transA: true, transB: false, dtype: dtype, output: dtype,
                        alpha: 1, beta: 1,
                        a: (dropped ?? probabilities, layout.scores(g) + pRows, s.keyLength, layout.scoreStride),
                        b: (dOutput, layout.query(b, g) + qRows, qRow, qStride),
                        c: (dv, layout.keyValue(b), kvRow, kvStride), heads: s.keyValueHeads)
                    // dP_h = dO_h·V_jᵀ, into the (now free) float32 score buffer.
                    try headGEMM(
                        m: chunk.count, n: chunk.keys, k: layout.d, transA: false, transB: true, dtype: dtype, output: .float32,
                        alpha: 1, beta: 0,
                        a: (dOutput, layout.query(b, g) + qRows, qRow, qStride),
                        b: (value, layout.keyValue(b), kvRow, kvStride),
                        c: (scores, layout.scores(g) + pRows, s.keyLength, layout.scoreStride), heads: s.keyValueHeads)
                }
            }
            try launch(.attention, "attention_score_gradient", dtype: dtype, grid: (s.queryHeads * s.queryLength, 1, 1), [
                .pointer(address(probabilities, "attentionBackward")), .pointer(address(scores, "attentionBackward")),
                .pointer(address(delta, "attentionBackward")),
            ] + rowArguments(s, b) + [.int32(s.causal ? 1 : 0), .float(s.scale), keyLimit(s, b)] + Self.dropoutArguments(s.dropout))
            for chunk in chunks {
                let (pRows, qRows) = (chunk.first * s.keyLength, chunk.first * qRow)
                for g in 0..<layout.group {
                    // dQ_h = dS_h·K_j and dK_j += dS_hᵀ·Q_h (the scale is already in dS).
                    try headGEMM(
                        m: chunk.count, n: layout.d, k: chunk.keys, transA: false, transB: false, dtype: dtype, output: dtype,
                        alpha: 1, beta: 0,
                        a: (probabilities, layout.scores(g) + pRows, s.keyLength, layout.scoreStride),
                        b: (key, layout.keyValue(b), kvRow, kvStride),
                        c: (dq, layout.query(b, g) + qRows, qRow, qStride), heads: s.keyValueHeads)
                    try headGEMM(
                        m: chunk.keys, n: layout.d, k: chunk.count, transA: true, transB: false, dtype: dtype, output: dtype,
                        alpha: 1, beta: 1,
                        a: (probabilities, layout.scores(g) + pRows, s.keyLength, layout.scoreStride),
                        b: (query, layout.query(b, g) + qRows, qRow, qStride),
                        c: (dk, layout.keyValue(b), kvRow, kvStride), heads: s.keyValueHeads)
                }
            }
        }
        return AttentionGradients(query: dq, key: dk, value: dv)
    }
}
