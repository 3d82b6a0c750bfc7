import SlopeCore

extension CUDABackend {
    /// Two deterministic passes: per-block partials, then one block over the partials. Result: float32 [1].
    private func reduce(_ x: Tensor, op: Int32, _ name: String) throws -> Tensor {
        let blocks = Self.reductionBlocks(x.count)
        let partials = try newTensor([blocks], dtype: .float32)
        let result = try newTensor([1], dtype: .float32)
        try launch(.reductions, "reduce_partials", dtype: x.dtype, grid: (blocks, 1, 1), [
            .pointer(address(x, name)), .int64(Int64(x.count)), .pointer(address(partials, name)), .int32(op),
        ])
        try launch(.reductions, "reduce_final", dtype: x.dtype, grid: (1, 1, 1), [
            .pointer(address(partials, name)), .int32(Int32(blocks)), .pointer(address(result, name)), .int32(op),
        ])
        return result
    }

    /// Blocks of `reduce_partials` for `count` elements: one per 256, at most 1024 (grid-stride beyond).
    static func reductionBlocks(_ count: Int) -> Int { min(1024, max(1, (count + 255) / 256)) }

    public func sum(_ x: Tensor) throws -> Tensor { try reduce(x, op: 0, "sum") }
    public func sumOfSquares(_ x: Tensor) throws -> Tensor { try reduce(x, op: 1, "sumOfSquares") }
    public func maxAbsolute(_ x: Tensor) throws -> Tensor { try reduce(x, op: 2, "maxAbsolute") }

    public func totalSumOfSquares(_ tensors: [Tensor]) throws -> Double {
        // Each tensor's block partials go to its own slice of one buffer; one final pass, one read back.
        let blocks = tensors.map { Self.reductionBlocks($0.count) }
        let partials = try newTensor([blocks.reduce(0, +)], dtype: .float32)
        let result = try newTensor([1], dtype: .float32)
        let name = "totalSumOfSquares"
        var offset = 0
        for (tensor, count) in zip(tensors, blocks) {
            try launch(.reductions, "reduce_partials", dtype: tensor.dtype, grid: (count, 1, 1), [
                .pointer(address(tensor, name)), .int64(Int64(tensor.count)),
                .pointer(address(partials, name) + UInt64(offset * 4)), .int32(1),
            ])
            offset += count
        }
        guard offset > 0 else { return 0 }
        try launch(.reductions, "reduce_final", dtype: .float32, grid: (1, 1, 1), [
            .pointer(address(partials, name)), .int32(Int32(offset)), .pointer(address(result, name)), .int32(1),
        ])
        return try scalar(result)
    }

    /// out [cols] = Σ_r x[r, :] in two deterministic passes at full bandwidth (16-byte row reads), or onesᵀ·x on
    /// cuBLASLt when a row is not a whole number of 16-byte packs.
    public func sumRows(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try x.asMatrix(operation: "sumRows")
        let out = try newTensor([columns], dtype: x.dtype)
        try columnSums(x, rows: rows, columns: columns, into: out, accumulate: false)
        return out
    }

    public func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws {
        let (rows, columns) = try x.asMatrix(operation: "accumulateColumnSums")
        guard target.count == columns, target.dtype == x.dtype else {
            throw TensorError.shapeMismatch(
                operation: "accumulateColumnSums", shapes: [x.shape, target.shape], reason: "target must be [columns] of x's dtype")
        }
        try touch(target)
        try columnSums(x, rows: rows, columns: columns, into: target, accumulate: true)
    }

    private func columnSums(_ x: Tensor, rows: Int, columns: Int, into out: Tensor, accumulate: Bool) throws {
        let pack = 16 / x.dtype.byteSize
        guard rows > 0 else {
            if !accumulate { try memsetZero(out) }
            return
        }
        guard columns % pack == 0 else {
            let ones = try newTensor([1, rows], dtype: x.dtype)
            try fill(ones, with: 1)
            _ = try gemm(ones, x.reshaped([rows, columns]), transposeA: false, transposeB: false, alpha: 1, beta: accumulate ? 1 : 0,
                         into: out.reshaped([1, columns]), bias: nil)
            return
        }
        let chunks = Self.columnSumChunks(rows: rows)
        let partial = try newTensor([chunks.count, columns], dtype: .float32)
        try launch(.reductions, "column_sums_partial", dtype: x.dtype, grid: ((columns + 32 * pack - 1) / (32 * pack), chunks.count, 1), [
            .pointer(address(x, "column sums")), .pointer(address(partial, "column sums")), .int64(Int64(rows)), .int64(Int64(columns)),
            .int64(Int64(chunks.rows)),
        ])
        try sumPartials(partial, into: out, accumulate: accumulate)
    }

    /// Row chunks for two-stage column sums: about 128 rows each, at most 1024 chunks.
    static func columnSumChunks(rows: Int) -> (count: Int, rows: Int) {
        let chunkRows = max(128, (rows + 1023) / 1024)
        return (max(1, (rows + chunkRows - 1) / chunkRows), chunkRows)
    }

    /// `out[c] = Σ_k partial[k, c]` (float32 partials → out's dtype), added to `out` when `accumulate`.
    func sumPartials(_ partial: Tensor, into out: Tensor, accumulate: Bool = false) throws {
        let (chunks, columns) = (partial.shape[0], partial.shape[1])
        try launch(.reductions, "column_sum_partials", dtype: out.dtype, grid: ((columns + 255) / 256, 1, 1), [
            .pointer(address(partial, "column sums")), .pointer(address(out, "column sums")), .int64(Int64(chunks)), .int64(Int64(columns)),
            .int32(accumulate ? 1 : 0),
        ])
    }
}
