import SlopeCore

/// cuDNN's fused attention, forward and backward, as the operation graphs its flash-attention engines recognise
/// (the pattern cuDNN's frontend builds for scaled dot-product attention: matmul, scale, causal mask, softmax with
/// its log-sum-exp, matmul), over slope's layouts: Q, O, dO, dQ `[B·Tq, Hq·D]`, K, V, dK, dV `[B·Tk, Hkv·D]`, the
/// log-sum-exp `[B·Tq, Hq]` float32. Tensors are named for ``CuDNNPlan/execute(handle:pointers:scalars:workspace:)``.
enum CuDNNAttentionGraph {
    /// Query heads share key/value heads by broadcasting over the head dimension of the batched matmuls.
    /// With `packedStatistics` the log-sum-exp is `[B, H, Tq]` instead (cuDNN's default layout), for a cuDNN that
    /// refuses slope's.
    static func forward(_ s: AttentionShape, dtype: DType, packedStatistics: Bool = false) -> CuDNNGraph {
        var g = CuDNNGraph(name: "attention forward \(label(s))")
        let io = dataType(dtype)
        let q = g.tensor("Q", queryDimensions(s), strides: queryStrides(s), io)
        let kT = g.tensor("K", keyTransposedDimensions(s), strides: keyTransposedStrides(s), io)
        let v = g.tensor("V", keyDimensions(s), strides: keyStrides(s), io)
        let o = g.tensor("O", queryDimensions(s), strides: queryStrides(s), io)
        let stats = g.tensor("Stats", rowDimensions(s), strides: statsStrides(s, packed: packedStatistics), .float)
        let scale = g.scalar("Scale")
        let scores = scoreDimensions(s)

        let s1 = g.scaledScores(q, kT, scale, scores)
        let masked = s.causal ? g.causalMask(s1, scores) : s1
        let maximum = g.intermediate("row max", rowDimensions(s))
        g.append(.reduction(.maximum, x: masked, y: maximum))
        let shifted = g.intermediate("S − max", scores)
        g.append(.pointwise(.subtract, x: masked, b: maximum, y: shifted))
        let exponentials = g.intermediate("exp", scores)
        g.append(.pointwise(.exp, x: shifted, y: exponentials))
        let sum = g.intermediate("row sum", rowDimensions(s))
        g.append(.reduction(.add, x: exponentials, y: sum))
        let logSum = g.intermediate("log sum", rowDimensions(s))
        g.append(.pointwise(.log, x: sum, y: logSum))
        g.append(.pointwise(.add, x: maximum, b: logSum, y: stats))
        // P in the operands' precision, as the second matmul of the engines takes it.
        let p = g.tensor("P", scores, strides: CuDNNGraph.packedStrides(scores), io, virtual: true)
        g.append(.pointwise(.divide, x: exponentials, b: sum, y: p))
        g.append(.matmul(a: p, b: v, c: o))
        return g
    }

    /// Recomputes P from the saved log-sum-exp; δ = rowsum(dO ⊙ O) goes through the `SoftmaxSum` scratch tensor and
    /// dQ accumulates in float32 in `dQAccumulator` (both caller memory, sizes from ``scratchBytes(_:)``).
    static func backward(_ s: AttentionShape, dtype: DType, packedStatistics: Bool = false) -> CuDNNGraph {
        var g = CuDNNGraph(name: "attention backward \(label(s))")
        let io = dataType(dtype)
        let q = g.tensor("Q", queryDimensions(s), strides: queryStrides(s), io)
        let kT = g.tensor("K", keyTransposedDimensions(s), strides: keyTransposedStrides(s), io)
        let vT = g.tensor("V", keyTransposedDimensions(s), strides: keyTransposedStrides(s), io)
        let o = g.tensor("O", queryDimensions(s), strides: queryStrides(s), io)
        let stats = g.tensor("Stats", rowDimensions(s), strides: statsStrides(s, packed: packedStatistics), .float)
        let dO = g.tensor("dO", queryDimensions(s), strides: queryStrides(s), io)
        let dQ = g.tensor("dQ", queryDimensions(s), strides: queryStrides(s), io)
        let dK = g.tensor("dK", keyDimensions(s), strides: keyStrides(s), io)
        let dV = g.tensor("dV", keyDimensions(s), strides: keyStrides(s), io)
        let scale = g.scalar("Scale")
        let one = g.scalar("One")
        let softmaxSum = g.tensor("SoftmaxSum", rowDimensions(s), strides: CuDNNGraph.packedStrides(rowDimensions(s)), .float)
        let dQAccumulator = g.tensor(
            "dQAccumulator", queryDimensions(s), strides: CuDNNGraph.packedStrides(queryDimensions(s)), .float)
        let scores = scoreDimensions(s)
        let transposedScores = [s.batch, s.queryHeads, s.keyLength, s.queryLength]
        let transposedScoreStrides = [s.queryHeads * s.queryLength * s.keyLength, s.queryLength * s.keyLength, 1, s.keyLength]

        // δ = rowsum(dO ⊙ O)
        let product = g.intermediate("dO⊙O", queryDimensions(s))
        g.append(.pointwise(.multiply, x: dO, b: o, y: product))
        let delta = g.intermediate("δ", rowDimensions(s))
        g.append(.reduction(.add, x: product, y: delta))
        g.append(.pointwise(.multiply, x: delta, b: one, y: softmaxSum))
        // P = exp(S·scale − lse), masked
        let s1 = g.scaledScores(q, kT, scale, scores)
        let s2 = g.intermediate("S·scale − lse", scores)
        g.append(.pointwise(.subtract, x: s1, b: stats, y: s2))
        let masked = s.causal ? g.causalMask(s2, scores) : s2
        let p = g.intermediate("P", scores)
        g.append(.pointwise(.exp, x: masked, y: p))
        // dV = Pᵀ·dO
        let pT = g.tensor("Pᵀ", transposedScores, strides: transposedScoreStrides, io, virtual: true)
        g.append(.reshape(x: p, y: pT))
        g.keyValueGradient(dV, a: pT, b: dO, s, io)
        // dS = P ⊙ (dO·Vᵀ − δ)·scale
        let dP = g.intermediate("dP", scores)
        g.append(.matmul(a: dO, b: vT, c: dP))
        let dS0 = g.intermediate("dP − δ", scores)
        g.append(.pointwise(.subtract, x: dP, b: softmaxSum, y: dS0))
        let dS1 = g.intermediate("P⊙(dP − δ)", scores)
        g.append(.pointwise(.multiply, x: dS0, b: p, y: dS1))
        let dS = g.intermediate("dS", scores)
        g.append(.pointwise(.multiply, x: dS1, b: scale, y: dS))
        // dK = dSᵀ·Q
        let dST = g.tensor("dSᵀ", transposedScores, strides: transposedScoreStrides, io, virtual: true)
        g.append(.reshape(x: dS, y: dST))
        g.keyValueGradient(dK, a: dST, b: q, s, io)
        // dQ = dS·K, accumulated in float32, then rounded
        let k = g.intermediate("K", keyDimensions(s), strides: keyStrides(s))
        g.append(.reshape(x: kT, y: k))
        g.append(.matmul(a: dS, b: k, c: dQAccumulator))
        g.append(.pointwise(.identity, x: dQAccumulator, y: dQ))
        return g
    }

    /// Bytes of the backward's caller-provided float32 scratch tensors.
    static func scratchBytes(_ s: AttentionShape) -> (softmaxSum: Int, dQAccumulator: Int) {
        (s.batch * s.queryHeads * s.queryLength * 4, s.batch * s.queryHeads * s.queryLength * s.headDimension * 4)
    }

    static func dataType(_ dtype: DType) -> CuDNN.DataType { dtype == .float16 ? .half : .bfloat16 }

    static func label(_ s: AttentionShape) -> String {
        "\(s.batch)×\(s.queryLength)" + (s.keyLength == s.queryLength ? "" : "→\(s.keyLength)")
            + "×\(s.queryHeads)" + (s.keyValueHeads == s.queryHeads ? "" : "/\(s.keyValueHeads)") + "×\(s.headDimension)"
            + (s.causal ? "" : " full")
    }

    // [B, H, T, D] views of the row-major [B·T, H·D] activations.
    static func queryDimensions(_ s: AttentionShape) -> [Int] { [s.batch, s.queryHeads, s.queryLength, s.headDimension] }
    static func queryStrides(_ s: AttentionShape) -> [Int] {
        let d = s.headDimension, h = s.queryHeads
        return [s.queryLength * h * d, d, h * d, 1]
    }
    static func keyDimensions(_ s: AttentionShape) -> [Int] { [s.batch, s.keyValueHeads, s.keyLength, s.headDimension] }
    static func keyStrides(_ s: AttentionShape) -> [Int] {
        let d = s.headDimension, h = s.keyValueHeads
        return [s.keyLength * h * d, d, h * d, 1]
    }
    /// Kᵀ: the same memory with the last two dimensions (and their strides) swapped.
    static func keyTransposedDimensions(_ s: AttentionShape) -> [Int] { [s.batch, s.keyValueHeads, s.headDimension, s.keyLength] }
    static func keyTransposedStrides(_ s: AttentionShape) -> [Int] {
        let strides = keyStrides(s)
        return [strides[0], strides[1], strides[3], strides[2]]
    }
    static func scoreDimensions(_ s: AttentionShape) -> [Int] { [s.batch, s.queryHeads, s.queryLength, s.keyLength] }
    static func rowDimensions(_ s: AttentionShape) -> [Int] { [s.batch, s.queryHeads, s.queryLength, 1] }
    /// slope's log-sum-exp is `[B·Tq, Hq]`: heads innermost; packed, `[B, Hq, Tq]`.
    static func statsStrides(_ s: AttentionShape, packed: Bool = false) -> [Int] {
        packed ? CuDNNGraph.packedStrides(rowDimensions(s)) : [s.queryLength * s.queryHeads, 1, s.queryHeads, 1]
    }
}

extension CuDNNGraph {
    /// A float32 scalar passed by value.
    mutating func scalar(_ name: String) -> Int64 {
        tensor(name, [1, 1, 1, 1], strides: [1, 1, 1, 1], .float, byValue: true)
    }

    /// A virtual float32 tensor with explicit strides.
    mutating func intermediate(_ name: String, _ dimensions: [Int], strides: [Int]) -> Int64 {
        tensor(name, dimensions, strides: strides, .float, virtual: true)
    }

    /// `scale·Q·Kᵀ` in float32 ("S", then "S·scale"), the start of both passes.
    mutating func scaledScores(_ q: Int64, _ kT: Int64, _ scale: Int64, _ dimensions: [Int]) -> Int64 {
        let product = intermediate("S", dimensions)
        append(.matmul(a: q, b: kT, c: product))
        let scaled = intermediate("S·scale", dimensions)
        append(.pointwise(.multiply, x: product, b: scale, y: scaled))
        return scaled
    }

    /// `scores` where row ≥ column, −∞ elsewhere (causal, aligned at the top left); the `NegativeInfinity` scalar is
    /// added once.
    mutating func causalMask(_ scores: Int64, _ dimensions: [Int]) -> Int64 {
        let strides = Self.packedStrides(dimensions)
        let row = tensor("row index", dimensions, strides: strides, .int32, virtual: true)
        append(.pointwise(.genIndex, x: scores, y: row, axis: 2))
        let column = tensor("column index", dimensions, strides: strides, .int32, virtual: true)
        append(.pointwise(.genIndex, x: scores, y: column, axis: 3))
        let visible = tensor("row ≥ column", dimensions, strides: strides, .boolean, virtual: true)
        append(.pointwise(.greaterOrEqual, x: row, b: column, y: visible))
        let negativeInfinity = tensors.first { $0.name == "NegativeInfinity" }?.uid ?? scalar("NegativeInfinity")
        let masked = intermediate("masked", dimensions)
        append(.pointwise(.binarySelect, x: scores, b: negativeInfinity, t: visible, y: masked))
        return masked
    }

    /// dK or dV = a·b. With grouped-query attention the product has a gradient per query head: it stays virtual
    /// and is summed over each group of heads into the key/value head's gradient.
    mutating func keyValueGradient(_ gradient: Int64, a: Int64, b: Int64, _ s: AttentionShape, _ dataType: CuDNN.DataType) {
        guard s.keyValueHeads != s.queryHeads else { return append(.matmul(a: a, b: b, c: gradient)) }
        let dimensions = [s.batch, s.queryHeads, s.keyLength, s.headDimension]
        let perQueryHead = tensor(
            "\(self[gradient].name) per query head", dimensions, strides: Self.packedStrides(dimensions), dataType, virtual: true)
        append(.matmul(a: a, b: b, c: perQueryHead))
        append(.reduction(.add, x: perQueryHead, y: gradient))
    }
}
