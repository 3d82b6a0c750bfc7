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

    /// Every tensor's squares go into block partials of one buffer (up to 48 tensors of a dtype per launch, 32 768
    /// elements per block), then one final pass and one read back: a gradient norm over hundreds of tensors in a
    /// handful of launches.
    public func totalSumOfSquares(_ tensors: [Tensor]) throws -> Double {
        let name = "totalSumOfSquares"
        let chunk = 32_768
        var byType: [DType: [Tensor]] = [:]
        for tensor in tensors { byType[tensor.dtype, default: []].append(tensor) }
        let launches = byType.sorted { $0.key.rawValue < $1.key.rawValue }.flatMap { dtype, group in
            MultiTensorLaunch.batches(group, chunk: chunk, perLaunch: Fusion.tensorsPerLaunch(fusions), count: \.count).map { (dtype, $0) }
        }
        let blocks = launches.map(\.1.blocks).reduce(0, +)
        guard blocks > 0 else { return 0 }
        let partials = try newTensor([blocks], dtype: .float32)
        let result = try newTensor([1], dtype: .float32)
        var offset = 0
        for (dtype, batch) in launches {
            let table = try batch.table(entryBytes: 24) { writer, entry in
                writer.uint64(try address(entry.item, name))
                writer.int64(entry.count)
                writer.int64(entry.firstBlock)
            }
            try launch(.reductions, "sum_of_squares_multi", dtype: dtype, grid: (batch.blocks, 1, 1), [
                .bytes(table), .int64(Int64(chunk)), .pointer(address(partials, name) + UInt64(offset * 4)),
            ])
            offset += batch.blocks
        }
        try launch(.reductions, "reduce_final", dtype: .float32, grid: (1, 1, 1), [
            .pointer(address(partials, name)), .int32(Int32(blocks)), .pointer(address(result, name)), .int32(1),
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
