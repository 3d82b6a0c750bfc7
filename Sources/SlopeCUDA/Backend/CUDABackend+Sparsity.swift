import SlopeCore

extension CUDABackend {
    private func sparseArguments(_ rows: Int, _ columns: Int, _ pattern: NMPattern) -> [KernelArgument] {
        [.int64(Int64(rows)), .int64(Int64(columns)), .int32(Int32(pattern.n)), .int32(Int32(pattern.m))]
    }

    public func pruneMask(_ x: Tensor, pattern: NMPattern, direction: PruneDirection, within: Tensor?) throws -> Tensor {
        guard x.rank == 2 else { throw TensorError.shapeMismatch(operation: "pruneMask", shapes: [x.shape], reason: "expected a matrix") }
        let (rows, columns) = (x.shape[0], x.shape[1])
        switch direction {
        case .rowWise: try pattern.checkDivisible(columns, dimension: "the row length (columns)", operation: "pruneMask")
        case .columnWise: try pattern.checkDivisible(rows, dimension: "the column length (rows)", operation: "pruneMask")
        }
        if let within {
            try OperandChecks.dtype(within, .uint8, "pruneMask")
            try OperandChecks.shape(within, x.shape, "pruneMask", "the candidate mask")
        }
        let mask = try newTensor(x.shape, dtype: .uint8)
        try launch(.sparsity, "prune_mask", dtype: x.dtype, grid: elementwiseGrid(x.count / pattern.m), [
            .pointer(address(x, "pruneMask")), .optionalPointer(try within.map { try address($0, "pruneMask") }), .pointer(address(mask, "pruneMask")),
        ] + sparseArguments(rows, columns, pattern) + [.int32(direction == .columnWise ? 1 : 0)])
        return mask
    }

    public func compress(_ x: Tensor, pattern: NMPattern, mask: Tensor?) throws -> CompressedMatrix {
        guard x.rank == 2 else { throw TensorError.shapeMismatch(operation: "compress", shapes: [x.shape], reason: "expected a matrix") }
        let (rows, columns) = (x.shape[0], x.shape[1])
        try pattern.checkDivisible(columns, dimension: "the row length (columns)", operation: "compress")
        let keep = try mask ?? pruneMask(x, pattern: pattern, direction: .rowWise, within: nil)
        try OperandChecks.dtype(keep, .uint8, "compress")
        try OperandChecks.shape(keep, x.shape, "compress", "mask")
        let slots = [rows, pattern.keptCount(forLength: columns)]
        let values = try newTensor(slots, dtype: x.dtype)
        let indices = try newTensor(slots, dtype: .uint8)
        let overfull = try zeros([1], dtype: .int32)
        try launch(.sparsity, "compress", dtype: x.dtype, grid: elementwiseGrid(x.count / pattern.m), [
            .pointer(address(x, "compress")), .pointer(address(keep, "compress")), .pointer(address(values, "compress")),
            .pointer(address(indices, "compress")), .pointer(address(overfull, "compress")),
        ] + sparseArguments(rows, columns, pattern))
        if try int32s(overfull)[0] != 0 {
            throw TensorError.invalidArgument(operation: "compress", reason: "mask keeps more than \(pattern.n) of \(pattern.m) in some group")
        }
        return try CompressedMatrix(rows: rows, columns: columns, pattern: pattern, values: values, indices: indices)
    }

    public func decompress(_ matrix: CompressedMatrix) throws -> Tensor {
        let dense = try zeros(matrix.shape, dtype: matrix.values.dtype)
        try launch(.sparsity, "decompress", dtype: dense.dtype, grid: elementwiseGrid(matrix.values.count), [
            .pointer(address(matrix.values, "decompress")), .pointer(address(matrix.indices, "decompress")), .pointer(address(dense, "decompress")),
        ] + sparseArguments(matrix.rows, matrix.columns, matrix.pattern))
        return dense
    }

    public func gatherCompressed(_ dense: Tensor, layout: CompressedMatrix) throws -> Tensor {
        let values = try newTensor(layout.values.shape, dtype: dense.dtype)
        try gather(dense, layout: layout, into: values, accumulate: false)
        return values
    }

    public func accumulateGathered(_ dense: Tensor, layout: CompressedMatrix, into values: Tensor) throws {
        try OperandChecks.shape(values, layout.values.shape, "accumulateGathered", "the compressed values")
        try OperandChecks.sameDType([dense, values], "accumulateGathered")
        touch(values)
        try gather(dense, layout: layout, into: values, accumulate: true)
    }

    private func gather(_ dense: Tensor, layout: CompressedMatrix, into values: Tensor, accumulate: Bool) throws {
        try OperandChecks.shape(dense, layout.shape, "gatherCompressed", "the dense matrix")
        let operation = "gatherCompressed"
        if layout.pattern == .twoFour, layout.columns % 16 == 0 {
            try launch(.sparsity, "gather_compressed_2_4", dtype: dense.dtype, grid: elementwiseGrid(values.count / 8), [
                .pointer(address(dense, operation)), .pointer(address(layout.indices, operation)), .pointer(address(values, operation)),
                .int64(Int64(values.count / 8)), .int32(accumulate ? 1 : 0),
            ])
        } else {
            try launch(.sparsity, "gather_compressed", dtype: dense.dtype, grid: elementwiseGrid(values.count), [
                .pointer(address(dense, operation)), .pointer(address(layout.indices, operation)), .pointer(address(values, operation)),
            ] + sparseArguments(layout.rows, layout.columns, layout.pattern) + [.int32(accumulate ? 1 : 0)])
        }
    }

    public func mask(of matrix: CompressedMatrix) throws -> Tensor {
        let mask = try zeros(matrix.shape, dtype: .uint8)
        try launch(.sparsity, "slot_mask", dtype: .float32, grid: elementwiseGrid(matrix.indices.count), [
            .pointer(address(matrix.indices, "mask")), .pointer(address(mask, "mask")),
        ] + sparseArguments(matrix.rows, matrix.columns, matrix.pattern))
        return mask
    }

    // Y [T, S.rows] = X·Sᵀ (+ bias) on cuSPARSELt, or dense where that was measured faster.
    public func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Tensor {
        _ = try OperandChecks.sparseMatmul(x, s, bias: bias)
        return try sparseGEMM(x, s, bias: bias)
    }

    public func doublePrunedTranspose(of w: CompressedMatrix) throws -> CompressedMatrix {
        try w.pattern.checkDivisible(w.rows, dimension: "dout (rows of W)", operation: "doublePrunedTranspose")
        let pruned = try decompress(w)
        let columnMask = try pruneMask(pruned, pattern: w.pattern, direction: .columnWise, within: mask(of: w))
        return try compress(transpose(pruned), pattern: w.pattern, mask: transpose(columnMask))
    }

    public func refreshDoublePrunedTranspose(_ transposed: CompressedMatrix, from w: CompressedMatrix) throws {
        guard transposed.rows == w.columns, transposed.columns == w.rows, transposed.pattern == w.pattern else {
            throw TensorError.shapeMismatch(
                operation: "refreshDoublePrunedTranspose", shapes: [transposed.shape, w.shape], reason: "the transpose must be [din, dout] with W's pattern")
        }
        try OperandChecks.sameDType([transposed.values, w.values], "refreshDoublePrunedTranspose")
        touch(transposed.values)
        let operation = "refreshDoublePrunedTranspose"
        let tiled = 64 % w.pattern.m == 0
        let grid = tiled ? ((w.columns + 63) / 64, (w.rows + 63) / 64, 1) : elementwiseGrid(transposed.values.count)
        try launch(.sparsity, tiled ? "gather_transpose_tiled" : "gather_transpose", dtype: w.values.dtype, grid: grid, [
            .pointer(address(w.values, operation)), .pointer(address(w.indices, operation)), .pointer(address(transposed.indices, operation)),
            .pointer(address(transposed.values, operation)),
            .int64(Int64(w.rows)), .int64(Int64(w.columns)), .int32(Int32(w.pattern.n)), .int32(Int32(w.pattern.m)),
        ])
    }

    /// The two row blocks of a merged matrix, `[W; Lᵀ]`, as their own compressed matrices, split once and
    /// kept with the merged values (re-split if those are ever written).
    final class MergedParts {
        let generation: UInt64
        let weight: CompressedMatrix
        let down: CompressedMatrix
        /// `W + scale·Rᵀ·Lᵀ` as one dense matrix, for the shapes where one dense GEMM beats the factored form;
        /// made for one `up` (its storage and generation) and scale.
        var folded: (up: CUDAStorage, generation: UInt64, scale: Float, weight: Tensor)?
        init(generation: UInt64, weight: CompressedMatrix, down: CompressedMatrix) {
            self.generation = generation
            self.weight = weight
            self.down = down
        }
    }

    /// Rows `start ..< start + count` of a matrix as a new tensor.
    private func rows(_ tensor: Tensor, _ start: Int, _ count: Int) throws -> Tensor {
        let rowBytes = tensor.byteCount / max(tensor.shape[0], 1)
        let slice = try newTensor([count, tensor.shape[1]], dtype: tensor.dtype)
        guard slice.byteCount > 0 else { return slice }
        try cudaDevice.makeCurrent()
        try cudaDevice.driver.check(
            cudaDevice.driver.cuMemcpyDtoDAsync(try address(slice, "rows"), try address(tensor, "rows") + UInt64(start * rowBytes), slice.byteCount, cudaDevice.stream),
            "cuMemcpyDtoDAsync")
        return slice
    }

    private func mergedParts(_ merged: CompressedMatrix, outFeatures: Int) throws -> MergedParts {
        let holder = try storage(merged.values, "mergedSparseLowRankMatmul")
        if let parts = holder.derived as? MergedParts, parts.generation == holder.generation { return parts }
        func part(_ start: Int, _ count: Int) throws -> CompressedMatrix {
            try CompressedMatrix(
                rows: count, columns: merged.columns, pattern: merged.pattern,
                values: rows(merged.values, start, count), indices: rows(merged.indices, start, count))
        }
        let parts = MergedParts(
            generation: holder.generation, weight: try part(0, outFeatures), down: try part(outFeatures, merged.rows - outFeatures))
        holder.derived = parts
        return parts
    }

    // Y = X·Wᵀ + (X·L)·R·scale + bias, from the merged [W; Lᵀ]. Two ways, timed per shape (and forced by
    // SLOPE_SPARSE_GEMM: dense → folded, a sparse route → factored):
    // - factored: measured on an H100, one sparse GEMM over the stacked matrix followed by a strided low-rank GEMM
    //   and an add pass lost to dense; instead the small products come first — P = X·L (r columns),
    //   Y = scale·P·R + bias (cuBLASLt, bias in the epilogue) — and the sparse GEMM accumulates X·Wᵀ into Y
    //   (beta = 1), so Y is written once and read once.
    // - folded: one dense GEMM with W + scale·Rᵀ·Lᵀ, which wins where the sparse GEMM's gain is smaller than the
    //   extra passes (d = 2048 and 2560 at 8192 tokens on an H200).
    public func mergedSparseLowRankMatmul(
        _ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?
    ) throws -> Tensor {
        let rank = try OperandChecks.mergedSparseLowRank(x, merged: merged, outFeatures: outFeatures, up: up, bias: bias)
        if rank == 0 { return try sparseMatmul(x, merged, bias: bias) }
        let parts = try mergedParts(merged, outFeatures: outFeatures)
        func factored() throws -> Tensor {
            let projection = try sparseGEMM(x, parts.down, bias: nil)
            let y = try gemm(projection, up, transposeA: false, transposeB: false, alpha: scale, beta: 0, into: nil, bias: bias)
            return try sparseGEMM(x, parts.weight, bias: nil, accumulateInto: y)
        }
        func folded() throws -> Tensor {
            try gemm(x, foldedWeight(parts, up: up, scale: scale), transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias)
        }
        let key = "merged " + SparseGEMMDecisionStore.key(
            tokens: x.count / max(merged.columns, 1), outFeatures: outFeatures, inFeatures: merged.columns, dtype: x.dtype.rawValue,
            bias: bias == nil ? nil : "bias") + " r=\(rank)"
        return try mergedRoute(key, factored: factored, folded: folded) == .dense ? folded() : factored()
    }

    private func mergedRoute(_ key: String, factored: () throws -> Tensor, folded: () throws -> Tensor) throws -> SparseGEMMDecision.Route {
        if let forced = sparseRoute { return forced == SparseGEMMDecision.Route.dense.rawValue ? .dense : .factored }
        if let known = decisions.decision(for: key) { return known.route }
        let timings = [
            SparseGEMMDecision.Route.factored.rawValue: try medianMilliseconds(repeats: 10, warmup: 2) { _ = try factored() },
            SparseGEMMDecision.Route.dense.rawValue: try medianMilliseconds(repeats: 10, warmup: 2) { _ = try folded() },
        ]
        // The factored form must win clearly: at equal times the single GEMM is the simpler thing to run.
        let route: SparseGEMMDecision.Route = timings["factored"]! < 0.97 * timings["dense"]! ? .factored : .dense
        decisions.record(SparseGEMMDecision(route: route, milliseconds: timings), for: key)
        return route
    }

    private func foldedWeight(_ parts: MergedParts, up: Tensor, scale: Float) throws -> Tensor {
        let upStorage = try storage(up, "mergedSparseLowRankMatmul")
        if let folded = parts.folded, folded.up === upStorage, folded.generation == upStorage.generation, folded.scale == scale {
            return folded.weight
        }
        let weight = try decompress(parts.weight)
        _ = try gemm(up, decompress(parts.down), transposeA: true, transposeB: false, alpha: scale, beta: 1, into: weight, bias: nil)
        parts.folded = (upStorage, upStorage.generation, scale, weight)
        return weight
    }
}
