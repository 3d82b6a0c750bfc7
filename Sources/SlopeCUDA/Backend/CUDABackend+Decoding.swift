import CCUDA
import SlopeCore

// Generation's kernels (KernelSources.decoding): the decode step's attention over every sequence's cache rows at once,
// rows moved between the packed step and the cache, and greedy decoding's argmax.
extension CUDABackend {
    public func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, starts: [Int], lengths: [Int], shape s: DecodeAttentionShape
    ) throws -> Tensor {
        try OperandChecks.decodeAttention(query: query, keys: keys, values: values, starts: starts, lengths: lengths, shape: s)
        let ranges = try indices((starts + lengths).map(Int32.init))
        return try launchDecodeAttention(query: query, keys: keys, values: values, ranges: ranges, maxLength: lengths.max() ?? 1, shape: s)
    }

    public func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, ranges: Tensor, maxLength: Int, shape s: DecodeAttentionShape
    ) throws -> Tensor {
        try OperandChecks.decodeAttention(query: query, keys: keys, values: values, ranges: ranges, maxLength: maxLength, shape: s)
        return try launchDecodeAttention(query: query, keys: keys, values: values, ranges: ranges, maxLength: maxLength, shape: s)
    }

    /// Blocks of 256 threads (DECODE_WARPS warps) per (sequence, query head, split of its keys); `ranges` holds the
    /// starts, then the lengths. Split, the chunks' partial softmaxes go through a float32 scratch to the combine.
    private func launchDecodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, ranges: Tensor, maxLength: Int, shape s: DecodeAttentionShape
    ) throws -> Tensor {
        let out = try newTensor(query.shape, dtype: query.dtype)
        let sequences = query.shape[0]
        guard sequences > 0 else { return out }
        let split = DecodeAttentionSplit(
            sequences: sequences, queryHeads: s.queryHeads, maxLength: maxLength, multiprocessors: cudaDevice.multiprocessorCount)
        let partial = split.splits == 1 ? nil : try newTensor([sequences * s.queryHeads * split.splits * (s.headDimension + 2)], dtype: .float32)
        let base = try address(ranges, "decodeAttention")
        let kernel = decodeAttentionKernel.name(headDimension: s.headDimension, elementBytes: query.dtype.byteSize)
        try launch(.decoding, kernel, dtype: query.dtype, grid: (sequences, s.queryHeads, split.splits), block: (256, 1, 1), [
            .pointer(address(query, "decodeAttention")), .pointer(address(keys, "decodeAttention")), .pointer(address(values, "decodeAttention")),
            .pointer(base), .pointer(base + UInt64(4 * sequences)), .pointer(address(out, "decodeAttention")),
            .optionalPointer(address(ifAny: partial, "decodeAttention")),
            .int64(Int64(s.queryHeads)), .int64(Int64(s.keyValueHeads)), .int64(Int64(s.headDimension)),
            .float(1 / Float(s.headDimension).squareRoot()), .int64(Int64(split.chunk)),
        ])
        if let partial {
            try launch(.decoding, "decode_attention_combine", dtype: query.dtype, grid: (sequences, s.queryHeads, 1), block: (128, 1, 1), [
                .pointer(address(partial, "decodeAttention")), .pointer(address(out, "decodeAttention")), .int64(Int64(split.splits)),
                .int64(Int64(s.queryHeads)), .int64(Int64(s.headDimension)),
            ])
        }
        return out
    }

    /// A device copy of small index values, shared with the calls that passed the same values lately.
    func indices(_ values: [Int32]) throws -> Tensor {
        try requireNotRecording("an index upload")  // (a remembered copy would be replayed with these values forever)
        return try indexUploads.value(for: values) { try tensor($0, shape: [$0.count]) }
    }

    public func moveRows(_ source: Tensor, from: [Int]?, into destination: Tensor, to: [Int]?) throws {
        let (count, width) = try OperandChecks.moveRows(source, from: from, into: destination, to: to)
        guard count > 0, width > 0 else { return }
        let combined = ((from ?? []) + (to ?? [])).map(Int32.init)
        let base = combined.isEmpty ? 0 : try address(indices(combined), "moveRows")
        try launchMoveRows(source, from: from == nil ? 0 : base, into: destination, to: to == nil ? 0 : base + UInt64(4 * (from?.count ?? 0)),
                           count: count, width: width)
    }

    public func scatterRows(_ source: Tensor, into destination: Tensor, rows: Tensor) throws {
        let (count, width) = try OperandChecks.scatterRows(source, into: destination, rows: rows)
        guard count > 0, width > 0 else { return }
        try launchMoveRows(source, from: 0, into: destination, to: address(rows, "scatterRows"), count: count, width: width)
    }

    public func gatherRows(_ source: Tensor, rows: Tensor) throws -> Tensor {
        let (shape, width) = try OperandChecks.gatherRows(source, rows: rows)
        let out = try newTensor(shape, dtype: source.dtype)
        guard rows.count > 0, width > 0 else { return out }
        try launchMoveRows(source, from: address(rows, "gatherRows"), into: out, to: 0, count: rows.count, width: width)
        return out
    }

    /// `destination[to[r]] = source[from[r]]` for `count` rows of `width`; a NULL index array is the identity.
    private func launchMoveRows(_ source: Tensor, from: CUdeviceptr, into destination: Tensor, to: CUdeviceptr, count: Int, width: Int) throws {
        try touch(destination)
        let packed = (width * source.dtype.byteSize) % 16 == 0  // (rows of whole 16-byte packs: moved a pack a thread)
        let grid = packed ? packedGrid(count * width, elementBytes: source.dtype.byteSize) : elementwiseGrid(count * width)
        try launch(.decoding, "move_rows", dtype: source.dtype, grid: grid, [
            .pointer(address(source, "moveRows")), .pointer(address(destination, "moveRows")), .pointer(from), .pointer(to),
            .int64(Int64(count)), .int64(Int64(width)),
        ])
    }

    public func argmaxRows(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try OperandChecks.argmaxRows(x)
        let out = try newTensor([rows], dtype: .int32)
        guard rows > 0 else { return out }
        // 1024 threads a row: a vocabulary's 50k–150k columns are one row's whole work at batch 1.
        try launch(.decoding, "argmax_rows", dtype: x.dtype, grid: (min(rows, 65_535), 1, 1), block: (1024, 1, 1), [
            .pointer(address(x, "argmaxRows")), .pointer(address(out, "argmaxRows")), .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return out
    }

    public func sampleRows(_ x: Tensor, temperatures: [Float], uniforms: [Float]) throws -> Tensor {
        let (rows, columns) = try OperandChecks.sampleRows(x, temperatures: temperatures, uniforms: uniforms)
        let out = try newTensor([rows], dtype: .int32)
        guard rows > 0 else { return out }
        let parameters = try tensor((temperatures + uniforms).map(Double.init), shape: [2 * rows], dtype: .float32)
        let base = try address(parameters, "sampleRows")
        try launch(.decoding, "sample_rows", dtype: x.dtype, grid: (min(rows, 65_535), 1, 1), [
            .pointer(address(x, "sampleRows")), .pointer(address(out, "sampleRows")), .pointer(base), .pointer(base + UInt64(4 * rows)),
            .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return out
    }
    public func truncatedLogits(_ x: Tensor, temperatures: [Float], topK: [Int], topP: [Float]) throws -> Tensor {
        let (rows, columns) = try OperandChecks.truncatedLogits(x, temperatures: temperatures, topK: topK, topP: topP)
        let out = try newTensor(x.shape, dtype: x.dtype)
        guard rows > 0 else { return out }
        let parameters = try tensor((temperatures + topP).map(Double.init), shape: [2 * rows], dtype: .float32)
        let limits = try tensor(topK.map { Int32(clamping: $0) }, shape: [rows])
        let base = try address(parameters, "truncatedLogits")
        try launch(.decoding, "truncate_rows", dtype: x.dtype, grid: (min(rows, 65_535), 1, 1), [
            .pointer(address(x, "truncatedLogits")), .pointer(address(out, "truncatedLogits")), .pointer(base),
            .pointer(address(limits, "truncatedLogits")), .pointer(base + UInt64(4 * rows)), .int64(Int64(rows)), .int64(Int64(columns)),
        ])
        return out
    }
}
