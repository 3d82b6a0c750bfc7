extension SparseWeight {
    /// The tensors that define this weight exactly, keyed by suffix (checkpoint names are `<name>.<suffix>`).
    ///
    /// Compressed: `values` and `indices` of W⊙Mr and `transpose_indices` (the slots of the double-pruned
    /// transpose, which encode Mc); its values are refreshed from W on load. Simulated: the dense masked
    /// weight and both masks.
    public func stateTensors() -> [(suffix: String, tensor: Tensor)] {
        switch storage {
        case .compressed(let weight, let transpose):
            return [("values", weight.values), ("indices", weight.indices), ("transpose_indices", transpose.indices)]
        case .simulated(let weight, let rowMask, let columnMask, _):
            return [("dense", weight), ("row_mask", rowMask), ("column_mask", columnMask)]
        }
    }

    /// Replaces values and masks with those `load(suffix)` returns (tensors on this weight's backend);
    /// the gradient is cleared.
    public func restoreState(_ load: (String) throws -> Tensor) throws {
        gradient = nil
        switch mode {
        case .compressed:
            let values = try load("values")
            let weight = try CompressedMatrix(rows: outFeatures, columns: inFeatures, pattern: pattern, values: values, indices: load("indices"))
            let transposeIndices = try load("transpose_indices")
            let transpose = try CompressedMatrix(
                rows: inFeatures, columns: outFeatures, pattern: pattern,
                values: backend.zeros(transposeIndices.shape, dtype: values.dtype), indices: transposeIndices)
            try backend.refreshDoublePrunedTranspose(transpose, from: weight)
            storage = .compressed(weight: weight, transpose: transpose)
        case .simulated:
            let (weight, rowMask, columnMask) = (try load("dense"), try load("row_mask"), try load("column_mask"))
            storage = .simulated(
                weight: weight, rowMask: rowMask, columnMask: columnMask, doublePruned: try backend.applyMask(weight, mask: columnMask))
        }
    }
}
