/// Argument checks every backend runs before computing, so all backends reject the same inputs with the
/// same ``TensorError``. Each returns the sizes the op needs.
public enum OperandChecks {
    public static func sameDType(_ tensors: [Tensor], _ operation: String) throws {
        guard let first = tensors.first?.dtype, tensors.allSatisfy({ $0.dtype == first }) else {
            throw TensorError.dtypeMismatch(operation: operation, dtypes: tensors.map(\.dtype))
        }
    }

    public static func shape(_ tensor: Tensor, _ shape: [Int], _ operation: String, _ what: String) throws {
        guard tensor.shape == shape else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [tensor.shape, shape], reason: "\(what) must be \(shape)")
        }
    }

    public static func dtype(_ tensor: Tensor, _ dtype: DType, _ operation: String) throws {
        guard tensor.dtype == dtype else { throw TensorError.unsupportedDType(operation: operation, dtype: tensor.dtype) }
    }

    /// Elements per row of a tensor seen as `[shape[0], rest]` (0 without rows).
    static func rowWidth(_ x: Tensor) -> Int { x.rank == 0 || x.shape[0] == 0 ? 0 : x.count / x.shape[0] }

    /// `copyRows`: both tensors seen as `[shape[0], rest]` with equal row widths and dtypes, and the ranges inside
    /// them. Returns the bytes of one row.
    /// `splitColumns`: a matrix whose columns the widths (each ≥ 0) add up to; its row count.
    public static func splitColumns(_ x: Tensor, widths: [Int]) throws -> Int {
        guard x.rank == 2, !widths.isEmpty, widths.allSatisfy({ $0 >= 0 }), widths.reduce(0, +) == x.shape[1] else {
            throw TensorError.shapeMismatch(
                operation: "splitColumns", shapes: [x.shape], reason: "expected a matrix whose \(x.shape.last ?? 0) columns are the widths \(widths) added up")
        }
        return x.shape[0]
    }

    /// `splitColumns(_:widths:scatteringInto:rows:)`: the split's checks, a destination (or nil) per part, each of the
    /// part's width and dtype, and an int32 row per row of `x`.
    @discardableResult
    public static func splitColumns(_ x: Tensor, widths: [Int], scatteringInto destinations: [Tensor?], rows: Tensor) throws -> Int {
        let count = try splitColumns(x, widths: widths)
        guard destinations.count == widths.count else {
            throw TensorError.invalidArgument(operation: "splitColumns", reason: "\(destinations.count) destinations for \(widths.count) parts")
        }
        for (width, destination) in zip(widths, destinations) {
            guard let destination else { continue }
            guard destination.dtype == x.dtype, destination.rank >= 1, rowWidth(destination) == width else {
                throw TensorError.shapeMismatch(
                    operation: "splitColumns", shapes: [x.shape, destination.shape], reason: "a destination's rows must be \(width) \(x.dtype) wide")
            }
        }
        guard rows.dtype == .int32, rows.shape == [count] else {
            throw TensorError.invalidArgument(operation: "splitColumns", reason: "rows must be \(count) int32 values, not \(rows.dtype) \(rows.shape)")
        }
        return count
    }

    public static func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, at row: Int) throws -> Int {
        try sameDType([source, destination], "copyRows")
        let width = rowWidth(source)
        guard source.rank >= 1, destination.rank >= 1, width == rowWidth(destination) || rows.isEmpty else {
            throw TensorError.shapeMismatch(
                operation: "copyRows", shapes: [source.shape, destination.shape], reason: "rows of the two tensors must have equal widths")
        }
        guard rows.lowerBound >= 0, rows.upperBound <= source.shape[0], row >= 0, row + rows.count <= destination.shape[0] else {
            throw TensorError.shapeMismatch(
                operation: "copyRows", shapes: [source.shape, destination.shape],
                reason: "rows \(rows) to row \(row) fall outside the tensors (\(source.shape[0]) and \(destination.shape[0]) rows)")
        }
        return width * source.dtype.byteSize
    }

    /// `moveRows`: equal row widths and dtypes, equal index counts (the rows moved), every index inside its tensor.
    /// Returns the number of rows moved and the row width in elements.
    public static func moveRows(_ source: Tensor, from: [Int]?, into destination: Tensor, to: [Int]?) throws -> (rows: Int, width: Int) {
        try sameDType([source, destination], "moveRows")
        let width = rowWidth(source)
        let count = from?.count ?? to?.count ?? source.shape.first ?? 0
        guard source.rank >= 1, destination.rank >= 1, width == rowWidth(destination) || count == 0, (to?.count ?? count) == count else {
            throw TensorError.shapeMismatch(
                operation: "moveRows", shapes: [source.shape, destination.shape], reason: "rows of equal widths, as many sources as targets")
        }
        guard (from ?? Array(0..<count)).allSatisfy({ (0..<source.shape[0]).contains($0) }),
              (to ?? Array(0..<count)).allSatisfy({ (0..<destination.shape[0]).contains($0) }), destination.shape[0] <= Int(Int32.max)
        else {
            throw TensorError.shapeMismatch(operation: "moveRows", shapes: [source.shape, destination.shape], reason: "a row index outside its tensor")
        }
        return (count, width)
    }

    /// `scatterRows`: equal row widths and dtypes, an `int32` row index per source row (their values unchecked).
    public static func scatterRows(_ source: Tensor, into destination: Tensor, rows: Tensor) throws -> (rows: Int, width: Int) {
        try sameDType([source, destination], "scatterRows")
        let count = source.shape.first ?? 0
        guard source.rank >= 1, destination.rank >= 1, source.shape.dropFirst() == destination.shape.dropFirst(), destination.shape[0] <= Int(Int32.max) else {
            throw TensorError.shapeMismatch(operation: "scatterRows", shapes: [source.shape, destination.shape], reason: "rows of equal widths")
        }
        guard rows.dtype == .int32, rows.shape == [count] else {
            throw TensorError.invalidArgument(operation: "scatterRows", reason: "rows must be int32 [\(count)], not \(rows.dtype) \(rows.shape)")
        }
        return (count, source.shape.dropFirst().reduce(1, *))
    }

    /// `gatherRows`: a source of rank ≥ 1 and an `int32` vector of row indices (their values unchecked). Returns the
    /// result's shape and its row width in elements.
    public static func gatherRows(_ source: Tensor, rows: Tensor) throws -> (shape: [Int], width: Int) {
        guard source.rank >= 1, source.shape[0] <= Int(Int32.max) else {
            throw TensorError.shapeMismatch(operation: "gatherRows", shapes: [source.shape], reason: "needs rows to gather from")
        }
        guard rows.dtype == .int32, rows.rank == 1 else {
            throw TensorError.invalidArgument(operation: "gatherRows", reason: "rows must be an int32 vector, not \(rows.dtype) \(rows.shape)")
        }
        return ([rows.count] + source.shape.dropFirst(), source.shape.dropFirst().reduce(1, *))
    }

    /// `argmaxRows`: a floating-point matrix with at least one column and column indices that fit int32.
    public static func argmaxRows(_ x: Tensor) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try x.asMatrix(operation: "argmaxRows")
        guard x.dtype.isFloatingPoint, columns >= 1, columns <= Int(Int32.max) else {
            throw TensorError.invalidArgument(operation: "argmaxRows", reason: "needs floating-point rows of 1 … 2³¹ − 1 columns, not \(x.shape) \(x.dtype)")
        }
        return (rows, columns)
    }

    /// `sampleRows`: `argmaxRows`' matrix, a finite temperature ≥ 0 and a uniform in [0, 1) per row.
    public static func sampleRows(_ x: Tensor, temperatures: [Float], uniforms: [Float]) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try argmaxRows(x)
        guard temperatures.count == rows, uniforms.count == rows, temperatures.allSatisfy({ $0.isFinite && $0 >= 0 }),
              uniforms.allSatisfy({ $0 >= 0 && $0 < 1 })
        else {
            throw TensorError.invalidArgument(
                operation: "sampleRows", reason: "needs a finite temperature ≥ 0 and a uniform in [0, 1) for each of the \(rows) rows")
        }
        return (rows, columns)
    }

    /// `truncatedLogits`: `argmaxRows`' matrix (at most 2²⁴ columns: the device counts them in float), and per row a
    /// finite temperature ≥ 0, a top-k ≥ 0 and a top-p in (0, 1].
    public static func truncatedLogits(_ x: Tensor, temperatures: [Float], topK: [Int], topP: [Float]) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try argmaxRows(x)
        guard columns <= 1 << 24, temperatures.count == rows, topK.count == rows, topP.count == rows,
              temperatures.allSatisfy({ $0.isFinite && $0 >= 0 }), topK.allSatisfy({ $0 >= 0 }), topP.allSatisfy({ $0 > 0 && $0 <= 1 })
        else {
            throw TensorError.invalidArgument(
                operation: "truncatedLogits",
                reason: "needs rows of at most 2²⁴ columns and, for each of the \(rows) rows, a finite temperature ≥ 0, a top-k ≥ 0 and a top-p in (0, 1]")
        }
        return (rows, columns)
    }

    /// Two operands of one elementwise op: equal shapes and dtypes.
    public static func elementwise(_ a: Tensor, _ b: Tensor, _ operation: String) throws {
        guard a.shape == b.shape else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [a.shape, b.shape], reason: "elementwise operands must have equal shapes")
        }
        try sameDType([a, b], operation)
    }

    /// Sizes of `C = op(A)·op(B)`: A's leading dimensions become rows (kept in the result's shape unless A
    /// is transposed); B is a matrix.
    public struct GEMMShape: Sendable {
        public let m: Int, n: Int, k: Int
        public let resultShape: [Int]
    }

    public static func gemm(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, c: Tensor?, bias: Tensor?) throws -> GEMMShape {
        guard a.rank >= 2, b.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "gemm", shapes: [a.shape, b.shape], reason: "A needs at least 2 dimensions and B exactly 2")
        }
        let (aRows, aColumns) = try a.asMatrix(operation: "gemm")
        let (m, k) = transposeA ? (aColumns, aRows) : (aRows, aColumns)
        let (kB, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kB else {
            throw TensorError.shapeMismatch(
                operation: "gemm", shapes: [a.shape, b.shape],
                reason: "inner dimensions \(k) and \(kB) differ (transposeA: \(transposeA), transposeB: \(transposeB))")
        }
        try sameDType([a, b] + (c.map { [$0] } ?? []) + (bias.map { [$0] } ?? []), "gemm")
        if let c, c.count != m * n || (c.shape.last != n && n != 0) {
            throw TensorError.shapeMismatch(operation: "gemm", shapes: [a.shape, b.shape, c.shape], reason: "C must hold [\(m), \(n)]")
        }
        if let bias { try shape(bias, [n], "gemm", "bias") }
        return GEMMShape(m: m, n: n, k: k, resultShape: transposeA ? [m, n] : Array(a.shape.dropLast()) + [n])
    }

    /// `Y = X·Sᵀ (+ bias)`: returns the number of token rows.
    public static func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Int {
        let (tokens, features) = try x.asMatrix(operation: "sparseMatmul")
        guard features == s.columns, x.rank >= 2 else {
            throw TensorError.shapeMismatch(
                operation: "sparseMatmul", shapes: [x.shape, s.shape], reason: "X's last dimension must equal S's columns (\(s.columns))")
        }
        try sameDType([x, s.values] + (bias.map { [$0] } ?? []), "sparseMatmul")
        if let bias { try shape(bias, [s.rows], "sparseMatmul", "bias") }
        return tokens
    }

    /// `Y += X·Sᵀ`: Y must be X's shape with S's rows as its last dimension, and of X's dtype.
    public static func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, accumulatingInto y: Tensor) throws {
        _ = try sparseMatmul(x, s, bias: nil)
        guard y.shape == Array(x.shape.dropLast()) + [s.rows] else {
            throw TensorError.shapeMismatch(operation: "sparseMatmul", shapes: [x.shape, s.shape, y.shape], reason: "Y must be [T, S.rows]")
        }
        try sameDType([x, y], "sparseMatmul")
    }

    /// Merged sparse + low-rank inference: returns the adapter rank.
    public static func mergedSparseLowRank(_ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, bias: Tensor?) throws -> Int {
        let rank = merged.rows - outFeatures
        guard rank >= 0, up.shape == [rank, outFeatures] else {
            throw TensorError.shapeMismatch(
                operation: "mergedSparseLowRankMatmul", shapes: [merged.shape, up.shape],
                reason: "merged must be [dout + r, din] and up [r, dout] with dout = \(outFeatures)")
        }
        try sameDType([x, up, merged.values] + (bias.map { [$0] } ?? []), "mergedSparseLowRankMatmul")
        if let bias { try shape(bias, [outFeatures], "mergedSparseLowRankMatmul", "bias") }
        return rank
    }

    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try x.asMatrix(operation: "layerNorm")
        try shape(weight, [columns], "layerNorm", "weight")
        try shape(bias, [columns], "layerNorm", "bias")
        try sameDType([x, weight, bias], "layerNorm")
        return (rows, columns)
    }

    /// A residual (or residual gradient) given to a norm must be shaped and typed like the tensor it is added to.
    public static func residual(_ residual: Tensor?, like x: Tensor, _ operation: String) throws {
        guard let residual else { return }
        guard residual.shape == x.shape else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [x.shape, residual.shape], reason: "the residual must match the input")
        }
        try sameDType([x, residual], operation)
    }

    /// A norm's residual dropout: a probability in [0, 1), and a residual to drop.
    public static func residualDropout(_ dropout: SeededDropout?, residual: Tensor?, _ operation: String) throws {
        guard let dropout else { return }
        try DropoutMask.check(dropout.probability, operation)
        guard residual != nil else {
            throw TensorError.invalidArgument(operation: operation, reason: "a residual dropout needs a residual to drop")
        }
    }

    public static func layerNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try x.asMatrix(operation: "layerNormBackward")
        guard dy.shape == x.shape else {
            throw TensorError.shapeMismatch(operation: "layerNormBackward", shapes: [dy.shape, x.shape], reason: "dy must match x")
        }
        try shape(weight, [columns], "layerNormBackward", "weight")
        try shape(saved.mean, [rows], "layerNormBackward", "saved mean")
        try sameDType([dy, x, weight], "layerNormBackward")
        return (rows, columns)
    }

    public static func adamW(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep) throws {
        for tensor in [gradient, moment1, moment2] where tensor.count != parameter.count {
            throw TensorError.shapeMismatch(
                operation: "adamW", shapes: [parameter.shape, tensor.shape], reason: "gradient and moments need the parameter's element count")
        }
        guard step.step >= 1 else {
            throw TensorError.invalidArgument(operation: "adamW", reason: "step must start at 1 (bias correction), got \(step.step)")
        }
        // One element type for the parameter and its gradient on every backend (CUDA's kernels take one), so the CPU
        // reference refuses what the GPU would.
        try sameDType([parameter, gradient], "adamW")
    }
}
