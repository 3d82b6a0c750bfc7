import SlopeCore

extension CUDABackend {
    /// Downloads and checks ids (a small int32 tensor) so a bad id is a clear error, not a memory fault.
    private func checkedIDs(_ ids: Tensor, rows: Int, ignoreIndex: Int32?, _ operation: String) throws -> [Int32] {
        try OperandChecks.dtype(ids, .int32, operation)
        let values = try int32s(ids)
        if let bad = values.enumerated().first(where: { $0.element != ignoreIndex && ($0.element < 0 || Int($0.element) >= rows) }) {
            throw TensorError.invalidArgument(operation: operation, reason: "id \(bad.element) at position \(bad.offset) is outside 0..<\(rows)")
        }
        return values
    }

    /// Checks ids like ``checkedIDs(_:rows:ignoreIndex:_:)``, from the range of the values uploaded into them when
    /// that is known (``CUDAStorage/uploadedRange``): no read-back, which would wait for the stream (and which a
    /// recorded decode step cannot hold).
    private func checkIDs(_ ids: Tensor, rows: Int, _ operation: String) throws {
        try OperandChecks.dtype(ids, .int32, operation)
        guard let range = try unrestoredStorage(ids, operation).uploadedRange else {
            _ = try checkedIDs(ids, rows: rows, ignoreIndex: nil, operation)
            return
        }
        guard range.lowerBound >= 0, Int(range.upperBound) < rows else {
            throw TensorError.invalidArgument(
                operation: operation, reason: "an id in \(range.lowerBound)...\(range.upperBound) is outside 0..<\(rows)")
        }
    }

    public func embedding(_ table: Tensor, ids: Tensor) throws -> Tensor {
        guard table.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "embedding", shapes: [table.shape], reason: "table must be [V, C]")
        }
        let columns = table.shape[1]
        try checkIDs(ids, rows: table.shape[0], "embedding")
        let out = try newTensor(ids.shape + [columns], dtype: table.dtype)
        try launch(.loss, "embedding_forward", dtype: table.dtype, grid: elementwiseGrid(ids.count * columns), [
            .pointer(address(table, "embedding")), .pointer(address(ids, "embedding")), .pointer(address(out, "embedding")),
            .int64(Int64(ids.count)), .int64(Int64(columns)), .int64(Int64(table.shape[0])),
        ])
        return out
    }

    public func embeddingBackward(_ dy: Tensor, ids: Tensor, into tableGradient: Tensor) throws {
        guard tableGradient.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "embeddingBackward", shapes: [tableGradient.shape], reason: "gradient must be [V, C]")
        }
        let columns = tableGradient.shape[1]
        guard dy.shape == ids.shape + [columns] else {
            throw TensorError.shapeMismatch(operation: "embeddingBackward", shapes: [dy.shape, ids.shape], reason: "dy must be ids' shape + [\(columns)]")
        }
        try OperandChecks.sameDType([dy, tableGradient], "embeddingBackward")
        let segments = EmbeddingSegments(
            tokenIDs: try checkedIDs(ids, rows: tableGradient.shape[0], ignoreIndex: nil, "embeddingBackward"), vocabulary: tableGradient.shape[0])
        guard !segments.ids.isEmpty else { return }
        let table = try tensor(segments.packed, shape: [segments.packed.count])
        let count = segments.ids.count
        let base = try address(table, "embeddingBackward")
        try touch(tableGradient)
        try launch(.loss, "embedding_backward", dtype: dy.dtype, grid: (min(count, 65_535), (columns + 255) / 256, 1), [
            .pointer(address(dy, "embeddingBackward")), .pointer(base), .pointer(base + UInt64(4 * count)),
            .pointer(base + UInt64(4 * (2 * count + 1))), .pointer(address(tableGradient, "embeddingBackward")),
            .int64(Int64(count)), .int64(Int64(columns)),
        ])
    }

    public func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int32) throws -> CrossEntropyOutput {
        let (rows, classes) = try logits.asMatrix(operation: "crossEntropy")
        guard targets.count == rows else {
            throw TensorError.shapeMismatch(operation: "crossEntropy", shapes: [logits.shape, targets.shape], reason: "one target per row of logits")
        }
        let counted = try checkedIDs(targets, rows: classes, ignoreIndex: ignoreIndex, "crossEntropy").filter { $0 != ignoreIndex }.count
        let probabilities = try newTensor(logits.shape, dtype: logits.dtype)
        let rowLoss = try newTensor([rows], dtype: .float32)
        try launch(.loss, "cross_entropy_forward", dtype: logits.dtype, grid: (rows, 1, 1), [
            .pointer(address(logits, "crossEntropy")), .pointer(address(targets, "crossEntropy")), .pointer(address(probabilities, "crossEntropy")),
            .pointer(address(rowLoss, "crossEntropy")), .int64(Int64(rows)), .int64(Int64(classes)), .int32(ignoreIndex),
        ])
        let loss = try sum(rowLoss)
        try scaleInPlace(loss, by: 1 / Double(max(counted, 1)))
        return CrossEntropyOutput(loss: loss, probabilities: probabilities, countedRows: counted)
    }

    public func crossEntropyBackward(_ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float) throws -> Tensor {
        try crossEntropyGradient(saved, targets: targets, ignoreIndex: ignoreIndex, scale: scale, overProbabilities: false)
    }

    // The kernel reads and writes each element at the same index, so it can run in place.
    public func crossEntropyBackwardConsuming(_ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float) throws -> Tensor {
        try crossEntropyGradient(saved, targets: targets, ignoreIndex: ignoreIndex, scale: scale, overProbabilities: true)
    }

    private func crossEntropyGradient(
        _ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float, overProbabilities: Bool
    ) throws -> Tensor {
        let (rows, classes) = try saved.probabilities.asMatrix(operation: "crossEntropyBackward")
        guard targets.count == rows else {
            throw TensorError.shapeMismatch(operation: "crossEntropyBackward", shapes: [saved.probabilities.shape, targets.shape], reason: "one target per row")
        }
        try OperandChecks.dtype(targets, .int32, "crossEntropyBackward")
        let out = overProbabilities ? saved.probabilities : try newTensor(saved.probabilities.shape, dtype: saved.probabilities.dtype)
        if overProbabilities { try touch(out) }
        try launch(.loss, "cross_entropy_backward", dtype: out.dtype, grid: elementwiseGrid(rows * classes), [
            .pointer(address(saved.probabilities, "crossEntropyBackward")), .pointer(address(targets, "crossEntropyBackward")),
            .pointer(address(out, "crossEntropyBackward")), .int64(Int64(rows)), .int64(Int64(classes)), .int32(ignoreIndex),
            .float(scale / Float(max(saved.countedRows, 1))),
        ])
        return out
    }
}
