/// A row-wise N:M sparse matrix `[rows, columns]` stored as its kept values and their positions.
///
/// Row `r`, group `g` (columns `g·M ..< (g+1)·M`) owns slots `g·N ..< (g+1)·N` of row `r` in both
/// tensors; `indices` holds each slot's position inside its group (`0 ..< M`), ascending.
/// A slot may hold the value 0 where a group has fewer than N non-zeros to keep (double pruning).
public struct CompressedMatrix: Sendable {
    public let rows: Int
    public let columns: Int
    public let pattern: NMPattern
    /// `[rows, columns / M · N]`, the weights' dtype.
    public let values: Tensor
    /// `[rows, columns / M · N]`, `uint8`.
    public let indices: Tensor

    public init(rows: Int, columns: Int, pattern: NMPattern, values: Tensor, indices: Tensor) throws {
        try pattern.checkDivisible(columns, dimension: "columns", operation: "CompressedMatrix")
        let slots = [rows, pattern.keptCount(forLength: columns)]
        guard values.shape == slots, indices.shape == slots else {
            throw TensorError.shapeMismatch(
                operation: "CompressedMatrix", shapes: [values.shape, indices.shape],
                reason: "values and indices must both be \(slots) for a \(rows)×\(columns) \(pattern) matrix")
        }
        guard indices.dtype == .uint8 else {
            throw TensorError.unsupportedDType(operation: "CompressedMatrix indices", dtype: indices.dtype)
        }
        self.rows = rows
        self.columns = columns
        self.pattern = pattern
        self.values = values
        self.indices = indices
    }

    /// The same positions with other values (e.g. a compressed gradient or optimizer moment).
    public func replacingValues(_ newValues: Tensor) throws -> CompressedMatrix {
        try CompressedMatrix(rows: rows, columns: columns, pattern: pattern, values: newValues, indices: indices)
    }

    public var shape: [Int] { [rows, columns] }

    /// Bytes held by values and indices together.
    public var byteCount: Int { values.byteCount + indices.byteCount }
}
