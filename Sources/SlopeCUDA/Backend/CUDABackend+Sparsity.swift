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
        let indices = try slotIndices(matrix.indices, "decompress")
        try launch(.sparsity, "decompress", dtype: dense.dtype, grid: elementwiseGrid(matrix.values.count), [
            .pointer(address(matrix.values, "decompress")), indices.pointer, .pointer(address(dense, "decompress")),
        ] + sparseArguments(matrix.rows, matrix.columns, matrix.pattern) + [indices.bits])
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
        try touch(values)
        try gather(dense, layout: layout, into: values, accumulate: true)
    }

    private func gather(_ dense: Tensor, layout: CompressedMatrix, into values: Tensor, accumulate: Bool) throws {
        try OperandChecks.shape(dense, layout.shape, "gatherCompressed", "the dense matrix")
        let operation = "gatherCompressed"
        let indices = try slotIndices(layout.indices, operation)
        if layout.pattern == .twoFour, layout.columns % 16 == 0 {
            try launch(.sparsity, "gather_compressed_2_4", dtype: dense.dtype, grid: elementwiseGrid(values.count / 8), [
                .pointer(address(dense, operation)), indices.pointer, .pointer(address(values, operation)),
                .int64(Int64(values.count / 8)), .int32(accumulate ? 1 : 0), indices.bits,
            ])
        } else {
            try launch(.sparsity, "gather_compressed", dtype: dense.dtype, grid: elementwiseGrid(values.count), [
                .pointer(address(dense, operation)), indices.pointer, .pointer(address(values, operation)),
            ] + sparseArguments(layout.rows, layout.columns, layout.pattern) + [.int32(accumulate ? 1 : 0), indices.bits])
        }
    }

    public func mask(of matrix: CompressedMatrix) throws -> Tensor {
        let mask = try zeros(matrix.shape, dtype: .uint8)
        let indices = try slotIndices(matrix.indices, "mask")
        try launch(.sparsity, "slot_mask", dtype: .float32, grid: elementwiseGrid(matrix.indices.count), [
            indices.pointer, .pointer(address(mask, "mask")),
        ] + sparseArguments(matrix.rows, matrix.columns, matrix.pattern) + [indices.bits])
        return mask
    }

    // Y [T, S.rows] = X·Sᵀ (+ bias) on cuSPARSELt, or dense where that was measured faster.
    public func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Tensor {
        _ = try OperandChecks.sparseMatmul(x, s, bias: bias)
        return try sparseGEMM(x, s, bias: bias)
    }

    /// ReLU in the epilogue of whichever GEMM the route runs (see ``sparseGEMM(_:_:bias:accumulateInto:relu:)``).
    public func sparseMatmulActivated(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, _ kind: Activation) throws -> Tensor {
        _ = try OperandChecks.sparseMatmul(x, s, bias: bias)
        guard kind == .relu else { return try activation(sparseGEMM(x, s, bias: bias), kind) }
        return try sparseGEMM(x, s, bias: bias, relu: true)
    }

    // Y += X·Sᵀ with beta = 1 in whichever GEMM the route runs.
    public func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, accumulatingInto y: Tensor) throws {
        try OperandChecks.sparseMatmul(x, s, accumulatingInto: y)
        _ = try sparseGEMM(x, s, bias: nil, accumulateInto: y)
    }

    /// On the GPU the transpose's values are not kept: they are a function of W's values, recomputed from W
    /// when an op reads them (in training, the backward's sparse GEMM, which rescatters them into cuSPARSELt's
    /// copy) and given back after it. That is 1 byte per weight of a 2:4 bf16 matrix.
    public func doublePrunedTranspose(of w: CompressedMatrix) throws -> CompressedMatrix {
        try w.pattern.checkDivisible(w.rows, dimension: "dout (rows of W)", operation: "doublePrunedTranspose")
        let pruned = try decompress(w)
        let columnMask = try pruneMask(pruned, pattern: w.pattern, direction: .columnWise, within: mask(of: w))
        let transposed = try compress(transpose(pruned), pattern: w.pattern, mask: transpose(columnMask))
        try refreshDoublePrunedTranspose(transposed, from: w)
        return transposed
    }

    /// Marks the transpose's values as W's at its slots from now on (their caches go stale) and gives their
    /// memory back; they are gathered from W's values when next read (``restore(_:)``). W must not change
    /// before that read without another refresh, as in training, where the refresh follows each optimizer step
    /// (and so also settles W's own values, ``settleValues(of:)``).
    public func refreshDoublePrunedTranspose(_ transposed: CompressedMatrix, from w: CompressedMatrix) throws {
        guard transposed.rows == w.columns, transposed.columns == w.rows, transposed.pattern == w.pattern else {
            throw TensorError.shapeMismatch(
                operation: "refreshDoublePrunedTranspose", shapes: [transposed.shape, w.shape], reason: "the transpose must be [din, dout] with W's pattern")
        }
        try OperandChecks.sameDType([transposed.values, w.values], "refreshDoublePrunedTranspose")
        // Where they live is checked; nothing is read back (W's values may be held only in cuSPARSELt's copy).
        for tensor in [w.values, w.indices, transposed.indices] { _ = try unrestoredStorage(tensor, "refreshDoublePrunedTranspose") }
        let values = try unrestoredStorage(transposed.values, "refreshDoublePrunedTranspose")
        values.generation &+= 1
        values.derivation = .doublePrunedTranspose(of: w, slots: transposed.indices)
        values.evict()
        try settleValues(of: w)
        try compactSlotIndices(w)
        try compactSlotIndices(transposed)
    }

    /// The slot indices as the kernels take them: an address and the bits per index (`index_bits`: 8, or 2 where
    /// they are kept packed, ``compactSlotIndices(_:)``).
    func slotIndices(_ indices: Tensor, _ operation: String) throws -> (pointer: KernelArgument, bits: KernelArgument) {
        let storage = try unrestoredStorage(indices, operation)
        if case .packedSlotIndices(let packed)? = storage.derivation { return (.pointer(packed.address), .int32(2)) }
        return (.pointer(try self.storage(indices, operation).address), .int32(8))
    }

    /// Keeps a matrix's slot indices at 2 bits each where m ≤ 4 allows (a quarter of the bytes; the kernels read
    /// that form) and gives back the byte-per-index form, which is unpacked again only when something needs it
    /// (a host read, a copy). The mask is static, so the packed form stays valid.
    func compactSlotIndices(_ matrix: CompressedMatrix) throws {
        let storage = try unrestoredStorage(matrix.indices, "compactSlotIndices")
        let count = matrix.indices.count
        guard matrix.pattern.m <= 4, count > 0, storage.derivation == nil, storage.isResident else { return }
        let packed = try CUDAStorage(byteCount: (count + 3) / 4, device: device, allocator: allocator)
        try launch(.sparsity, "pack_slot_indices", dtype: .float32, grid: elementwiseGrid((count + 3) / 4), [
            .pointer(storage.address), .pointer(packed.address), .int64(Int64(count)),
        ])
        storage.derivation = .packedSlotIndices(packed)
        storage.evict()
    }

    /// Recomputes the contents of evicted memory into a fresh block.
    func restore(_ storage: CUDAStorage) throws {
        guard let derivation = storage.derivation else {
            preconditionFailure("CUDAStorage evicted without a derivation")  // evict() refuses primary contents
        }
        try storage.reallocate()
        switch derivation {
        case .doublePrunedTranspose(let w, let slots):
            let operation = "refreshDoublePrunedTranspose"
            let tiled = 64 % w.pattern.m == 0
            let grid = tiled ? ((w.columns + 63) / 64, (w.rows + 63) / 64, 1) : elementwiseGrid(slots.count)
            let (wIndices, tIndices) = (try slotIndices(w.indices, operation), try slotIndices(slots, operation))
            try launch(.sparsity, tiled ? "gather_transpose_tiled" : "gather_transpose", dtype: w.values.dtype, grid: grid, [
                .pointer(address(w.values, operation)), wIndices.pointer, tIndices.pointer, .pointer(storage.address),
                .int64(Int64(w.rows)), .int64(Int64(w.columns)), .int32(Int32(w.pattern.n)), .int32(Int32(w.pattern.m)),
                wIndices.bits, tIndices.bits,
            ])
            (w.values.storage as? CUDAStorage)?.evict()  // W's values, if they were read back only for this
        case .compressedCopy(let copy, let map, let count, let dtype):
            try copyThroughMap(map, values: storage.address, compressed: copy.address, count: count, dtype: dtype, gather: true)
        case .packedSlotIndices(let packed):
            try launch(.sparsity, "unpack_slot_indices", dtype: .float32, grid: elementwiseGrid(storage.byteCount), [
                .pointer(packed.address), .pointer(storage.address), .int64(Int64(storage.byteCount)),
            ])
        case .sparseOperand(let values, let count, let dtype, let metadata, let map):
            guard let values = values.storage else { preconditionFailure("a compressed copy outlived its matrix's values") }
            try copyBytes(from: metadata.address, to: storage.address + UInt64(count * dtype.byteSize), count: metadata.byteCount)
            if try transposeBetweenCopies(values, into: storage) { return }
            if !values.isResident { try restore(values) }
            try copyThroughMap(map, values: values.address, compressed: storage.address, count: count, dtype: dtype, gather: false)
        }
    }

    /// Fills cuSPARSELt's copy of the double-pruned transpose (`copy`, metadata in place) straight from its copy
    /// of W, when W's values are held only there and both copies' maps have periodic inverses: one tiled
    /// transpose through the two inverse maps instead of reading W's values back, transposing them and
    /// scattering the result (three passes, two of them through the maps). Returns false where that does not
    /// apply (`Fusion.copyTranspose` off included), for the caller to take the long way.
    private func transposeBetweenCopies(_ values: CUDAStorage, into copy: CUDAStorage) throws -> Bool {
        guard fusions.contains(.copyTranspose), !values.isResident, case .doublePrunedTranspose(let w, let slots)? = values.derivation,
              64 % w.pattern.m == 0, let tInverse = (values.derived as? SparseOperandCache)?.entry(holding: copy)?.inverse,
              let wValues = w.values.storage as? CUDAStorage, !wValues.isResident,
              case .compressedCopy(let wCopy, _, _, _)? = wValues.derivation, wCopy.isResident,
              let wInverse = (wValues.derived as? SparseOperandCache)?.entry(holding: wCopy)?.inverse
        else { return false }
        let operation = "refreshDoublePrunedTranspose"
        let (wIndices, tIndices) = (try slotIndices(w.indices, operation), try slotIndices(slots, operation))
        func mapArguments(_ inverse: SparseOperandCache.InverseMap) -> [KernelArgument] {
            [.pointer(inverse.bases.address), .pointer(inverse.offsets.address), .int32(Int32(inverse.packing.log2Block)), .int64(inverse.packing.offsetMask)]
        }
        try launch(.sparsity, "transpose_copy_tiled", dtype: w.values.dtype, grid: ((w.columns + 63) / 64, (w.rows + 63) / 64, 1),
                   [.pointer(wCopy.address)] + mapArguments(wInverse) + [wIndices.pointer, tIndices.pointer, .pointer(copy.address)]
                   + mapArguments(tInverse) + [
                       .int64(Int64(w.rows)), .int64(Int64(w.columns)), .int32(Int32(w.pattern.n)), .int32(Int32(w.pattern.m)),
                       wIndices.bits, tIndices.bits, .int32(Int32(min(wInverse.runs, tInverse.runs))),
                   ])
        return true
    }
}
