/// What ``Backend/rmsNorm(_:weight:epsilon:)`` returns: `y` and the per-row `1/rms` (float32, float64 for float64 input).
public struct RMSNormOutput: Sendable {
    public let output: Tensor
    public let reciprocalRMS: Tensor
    /// `x + residual` when the norm was given a residual (the tensor that was normalised).
    public let sum: Tensor?
    public init(output: Tensor, reciprocalRMS: Tensor, sum: Tensor? = nil) {
        self.output = output
        self.reciprocalRMS = reciprocalRMS
        self.sum = sum
    }
}

/// The gradients of SwiGLU's `h = act(gate) ⊙ up` (``Backend/gatedActivationBackward(gate:up:gradient:_:)``).
public struct GatedActivationGradients: Sendable {
    public let gate: Tensor
    public let up: Tensor
    public init(gate: Tensor, up: Tensor) {
        self.gate = gate
        self.up = up
    }
}

public struct RMSNormGradients: Sendable {
    public let input: Tensor
    public let weight: Tensor
    public init(input: Tensor, weight: Tensor) {
        self.input = input
        self.weight = weight
    }
}

/// Where the rows of a `[batch·seq, heads·D]` tensor sit in their sequences, for rotary embeddings.
public struct RotaryLayout: Sendable, Equatable {
    /// Rows per sequence: row `r` is at position `positionOffset + r % sequenceLength`.
    public var sequenceLength: Int
    /// The position of each sequence's first row (the KV-cache length when generating).
    public var positionOffset: Int
    public var headDimension: Int
    /// The frequency base (10 000 in LLaMA 1/2, 500 000 in LLaMA 3).
    public var base: Float

    /// The position of every row, when rows are not sequences of one layout (generation: each sequence's tokens at
    /// its own positions); `sequenceLength` and `positionOffset` are then unused.
    public var positions: [Int]?

    public init(sequenceLength: Int, positionOffset: Int = 0, headDimension: Int, base: Float) {
        self.sequenceLength = sequenceLength
        self.positionOffset = positionOffset
        self.headDimension = headDimension
        self.base = base
    }

    /// Row r at position `positions[r]`.
    public init(positions: [Int], headDimension: Int, base: Float) {
        self.init(sequenceLength: max(positions.count, 1), headDimension: headDimension, base: base)
        self.positions = positions
    }

    /// Row `row`'s position.
    public func position(ofRow row: Int) -> Int { positions?[row] ?? positionOffset + row % sequenceLength }
}

/// Heads of a ``Backend/decodeAttention(query:keys:values:starts:lengths:shape:)`` call.
public struct DecodeAttentionShape: Sendable, Equatable {
    public var queryHeads: Int
    public var keyValueHeads: Int
    public var headDimension: Int

    public init(queryHeads: Int, keyValueHeads: Int, headDimension: Int) {
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
    }
}

/// Sizes of one attention call. Queries are the last `queryLength` positions of `keyLength`: with `causal`,
/// query `i` sees keys `0 ... keyLength − queryLength + i`.
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int
    public var queryLength: Int
    public var keyLength: Int
    public var queryHeads: Int
    public var keyValueHeads: Int
    public var headDimension: Int
    public var causal: Bool
    /// Multiplies the scores; `1/√D` by default.
    public var scale: Float
    /// The keys each batch element has (its sequence padded after them: the padding is never attended to), or nil
    /// when every one is `keyLength` long. An encoder's padding mask.
    public var keyLengths: [Int]?
    /// Dropout of the attention probabilities while training (BERT's): `O = (P ⊙ Z)·V`, `Z = keep / (1 − p)`,
    /// probability `P[b, h, i, j]` kept by the draw's mask at ``dropoutIndex(batch:head:query:)`` `+ j` (a function of
    /// the seed, so backward and every backend recompute the same mask); the log-sum-exp stays the undropped
    /// softmax's. nil: none.
    public var dropout: SeededDropout?
    /// Rows of q, k and v (and the output) when each sequence's rows are packed one after another — its
    /// `keyLengths[b]` rows from row Σ earlier lengths, no padding between sequences (an encoder's unpadded rows);
    /// rows past them are not attended to, their outputs and gradients zero. nil: the `[batch·length]` layout. Needs
    /// `keyLengths` and equal query and key lengths (the longest sequence).
    public var packedRows: Int?

    public init(
        batch: Int, queryLength: Int, keyLength: Int? = nil, queryHeads: Int, keyValueHeads: Int? = nil,
        headDimension: Int, causal: Bool = true, scale: Float? = nil, keyLengths: [Int]? = nil, dropout: SeededDropout? = nil,
        packedRows: Int? = nil
    ) {
        self.batch = batch
        self.queryLength = queryLength
        self.keyLength = keyLength ?? queryLength
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads ?? queryHeads
        self.headDimension = headDimension
        self.causal = causal
        self.scale = scale ?? 1 / Float(headDimension).squareRoot()
        self.keyLengths = keyLengths
        self.dropout = dropout
        self.packedRows = packedRows
    }

    /// Query heads sharing one key/value head.
    public var groupSize: Int { queryHeads / keyValueHeads }

    /// The dropout mask index of query `i`'s probability of key 0 in head `h` of batch element `b`:
    /// `((b·Hq + h)·Tq + i)·Tk` (the padded layout's, packed rows or not).
    @inline(__always)
    public func dropoutIndex(batch b: Int, head h: Int, query i: Int) -> Int {
        ((b * queryHeads + h) * queryLength + i) * keyLength
    }

    /// Rows of q and of the output (`batch·queryLength`, or ``packedRows``).
    public var queryRows: Int { packedRows ?? batch * queryLength }
    /// Rows of k and v.
    public var keyRows: Int { packedRows ?? batch * keyLength }

    /// Each batch element's first query row, its query rows, its first key row (a packed sequence's rows start where
    /// the one before it ends).
    public func rowLayout() -> [(queryStart: Int, queries: Int, keyStart: Int)] {
        guard packedRows != nil, let lengths = keyLengths else {
            return (0..<batch).map { ($0 * queryLength, queryLength, $0 * keyLength) }
        }
        var start = 0
        return lengths.map { length in
            defer { start += length }
            return (start, length, start)
        }
    }
}


public struct AttentionOutput: Sendable {
    /// `[B·Tq, Hq·D]`.
    public let output: Tensor
    /// `[B·Tq, Hq]` float32 (float64 for float64 input): `log Σ_j exp(score_ij)`.
    public let logSumExp: Tensor
    public init(output: Tensor, logSumExp: Tensor) {
        self.output = output
        self.logSumExp = logSumExp
    }
}

public struct AttentionGradients: Sendable {
    public let query: Tensor
    public let key: Tensor
    public let value: Tensor
    public init(query: Tensor, key: Tensor, value: Tensor) {
        self.query = query
        self.key = key
        self.value = value
    }
}

extension OperandChecks {
    public static func rmsNorm(_ x: Tensor, weight: Tensor) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try x.asMatrix(operation: "rmsNorm")
        try shape(weight, [columns], "rmsNorm", "weight")
        try sameDType([x, weight], "rmsNorm")
        return (rows, columns)
    }

    public static func rmsNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput) throws -> (rows: Int, columns: Int) {
        let (rows, columns) = try rmsNorm(x, weight: weight)
        guard dy.shape == x.shape else {
            throw TensorError.shapeMismatch(operation: "rmsNormBackward", shapes: [dy.shape, x.shape], reason: "dy must match x")
        }
        try shape(saved.reciprocalRMS, [rows], "rmsNormBackward", "saved 1/rms")
        try sameDType([dy, x], "rmsNormBackward")
        return (rows, columns)
    }

    /// Returns the number of heads.
    public static func rotaryEmbedding(_ x: Tensor, layout: RotaryLayout) throws -> Int {
        let (rows, columns) = try x.asMatrix(operation: "rotaryEmbedding")
        let d = layout.headDimension
        guard d > 0, d % 2 == 0, columns % d == 0, layout.sequenceLength > 0, rows % layout.sequenceLength == 0 || layout.positions != nil,
              layout.positionOffset >= 0, layout.base > 1, layout.positions.map({ $0.count == rows && $0.allSatisfy { (0..<Int(Int32.max)).contains($0) } }) ?? true
        else {
            throw TensorError.shapeMismatch(
                operation: "rotaryEmbedding", shapes: [x.shape],
                reason: "need an even head dimension (\(d)) dividing \(columns), rows divisible by the sequence length "
                    + "(\(layout.sequenceLength)), offset ≥ 0 and base > 1")
        }
        return columns / d
    }

    public static func attention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws {
        let sizesValid = s.batch > 0 && s.queryLength > 0 && s.keyLength >= s.queryLength && s.headDimension > 0
            && s.keyValueHeads > 0 && s.queryHeads % s.keyValueHeads == 0
        guard sizesValid else {
            throw TensorError.invalidArgument(
                operation: "attention",
                reason: "need positive sizes, keyLength (\(s.keyLength)) ≥ queryLength (\(s.queryLength)) and query heads "
                    + "(\(s.queryHeads)) a multiple of key/value heads (\(s.keyValueHeads))")
        }
        if let lengths = s.keyLengths {
            guard lengths.count == s.batch, lengths.allSatisfy({ (1...s.keyLength).contains($0) }) else {
                throw TensorError.invalidArgument(
                    operation: "attention", reason: "needs a key length in 1 … \(s.keyLength) for each of the \(s.batch) sequences, not \(lengths)")
            }
        }
        if let dropout = s.dropout { try DropoutMask.check(dropout.probability, "attention") }
        if let rows = s.packedRows {
            let real = s.keyLengths?.reduce(0, +) ?? 0
            guard s.keyLengths != nil, s.queryLength == s.keyLength, rows >= real else {
                throw TensorError.invalidArgument(
                    operation: "attention",
                    reason: "packed rows need each sequence's length, equal query and key lengths, and at least the \(real) rows the sequences fill, not \(rows)")
            }
        }
        try shape(query, [s.queryRows, s.queryHeads * s.headDimension], "attention", "query")
        try shape(key, [s.keyRows, s.keyValueHeads * s.headDimension], "attention", "key")
        try shape(value, [s.keyRows, s.keyValueHeads * s.headDimension], "attention", "value")
        try sameDType([query, key, value], "attention")
    }

    /// `decodeAttention`: one query row per sequence, each sequence's rows inside the cache, head counts that group.
    public static func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, starts: [Int], lengths: [Int], shape s: DecodeAttentionShape
    ) throws {
        try decodeAttention(query: query, keys: keys, values: values, sequences: starts.count, shape: s)
        guard lengths.count == starts.count, zip(starts, lengths).allSatisfy({ $0 >= 0 && $1 >= 1 && $0 + $1 <= keys.shape[0] }) else {
            throw TensorError.invalidArgument(
                operation: "decodeAttention", reason: "every sequence needs at least one row, inside the \(keys.shape[0]) rows of the cache")
        }
    }

    /// `decodeAttention` with its ranges on the device (`int32 [2·sequences]`): the shapes only.
    public static func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, ranges: Tensor, maxLength: Int, shape s: DecodeAttentionShape
    ) throws {
        let sequences = query.rank == 2 ? query.shape[0] : -1
        try decodeAttention(query: query, keys: keys, values: values, sequences: sequences, shape: s)
        guard maxLength >= 1, maxLength <= keys.shape[0] else {
            throw TensorError.invalidArgument(operation: "decodeAttention", reason: "the maximum length \(maxLength) must be 1 … \(keys.shape[0]) (the cache's rows)")
        }
        guard ranges.dtype == .int32, ranges.shape == [2 * sequences] else {
            throw TensorError.invalidArgument(
                operation: "decodeAttention", reason: "ranges must be int32 [\(2 * sequences)] (starts, then lengths), not \(ranges.dtype) \(ranges.shape)")
        }
    }

    private static func decodeAttention(query: Tensor, keys: Tensor, values: Tensor, sequences: Int, shape s: DecodeAttentionShape) throws {
        let (hq, hkv, d) = (s.queryHeads, s.keyValueHeads, s.headDimension)
        guard hq > 0, hkv > 0, d > 0, d <= 256, hq % hkv == 0 else {
            throw TensorError.invalidArgument(
                operation: "decodeAttention", reason: "need head dimension 1 … 256 and query heads (\(hq)) a multiple of key/value heads (\(hkv))")
        }
        try shape(query, [sequences, hq * d], "decodeAttention", "query")
        guard keys.rank == 2, keys.shape[1] == hkv * d, keys.shape[0] <= Int(Int32.max) else {
            throw TensorError.shapeMismatch(operation: "decodeAttention", shapes: [keys.shape], reason: "keys must be [rows < 2³¹, \(hkv * d)]")
        }
        try shape(values, keys.shape, "decodeAttention", "values")
        try sameDType([query, keys, values], "decodeAttention")
    }

    /// `rotaryEmbedding` at positions on the device: an even head dimension dividing the columns, `int32 [rows]`
    /// positions, a positive limit and base > 1. Returns the heads.
    public static func rotaryEmbedding(_ x: Tensor, positions: Tensor, headDimension d: Int, base: Float, positionLimit: Int) throws -> Int {
        let (rows, columns) = try x.asMatrix(operation: "rotaryEmbedding")
        guard d > 0, d % 2 == 0, columns % d == 0, base > 1, positionLimit >= 1, positionLimit <= Int(Int32.max) else {
            throw TensorError.shapeMismatch(
                operation: "rotaryEmbedding", shapes: [x.shape], reason: "need an even head dimension (\(d)) dividing \(columns), base > 1 and a position limit ≥ 1")
        }
        guard positions.dtype == .int32, positions.shape == [rows] else {
            throw TensorError.invalidArgument(operation: "rotaryEmbedding", reason: "positions must be int32 [\(rows)], not \(positions.dtype) \(positions.shape)")
        }
        return columns / d
    }

    public static func attentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape s: AttentionShape
    ) throws {
        try attention(query: query, key: key, value: value, shape: s)
        try shape(dOutput, query.shape, "attentionBackward", "dOutput")
        try shape(saved.output, query.shape, "attentionBackward", "saved output")
        try shape(saved.logSumExp, [s.queryRows, s.queryHeads], "attentionBackward", "saved log-sum-exp")
        try sameDType([dOutput, query, saved.output], "attentionBackward")
    }
}
