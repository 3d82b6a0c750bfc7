/// The real tokens of a padded batch: row `i` of the unpadded form is row `rows[i]` of the padded `[batch·sequence,
/// …]` one. What works on rows alone — the linears, norms, activations and dropout of an encoder block — runs on
/// the real rows only (a BERT batch of sentence pairs is 20–25% padding); attention takes them packed where the
/// backend can, else pads its operands back around its call (``SelfAttention/forward(_:batch:sequence:keyLengths:unpadded:)``).
public struct UnpaddedRows {
    public let batch: Int
    public let sequence: Int
    /// Each sequence's real tokens, at the start of its `sequence` rows.
    public let lengths: [Int]
    /// The padded row of each real token, sequence after sequence.
    public let rows: [Int]
    /// Rows of the unpadded form: `rows`, then copies of one padding row up to a multiple of
    /// ``rowMultiple(realRows:)`` (at most `batch·sequence`). A GPU plans and times each GEMM shape once (cuSPARSELt's
    /// algorithm search, the route choice), so a row count new with every batch kept SLoPe BERT pretraining on an H100
    /// at half the dense speed for its first ~50 steps; with the counts rounded, a run meets a handful of shapes. The
    /// copies run through the blocks like padding does, their gradients zero (nothing reads their outputs), and are
    /// dropped again by ``pad(_:)``.
    public let count: Int

    /// What a count of real rows is rounded up to: the largest power of two at most an eighth of it, and at least 128
    /// — at most 1/8 more rows (1/16 on average), and some six shapes over BERT's spread of pair lengths (4,600–7,400
    /// real rows of 8,192 at 128 tokens on the embedded corpus: 17 shapes in multiples of 128).
    public static func rowMultiple(realRows: Int) -> Int {
        var multiple = 128
        while multiple * 2 * 8 <= realRows { multiple *= 2 }
        return multiple
    }
    /// The padded rows gathered (`rows`, then the copied padding row's) and those scattered to (`rows`, then one row
    /// past the padded form's end, which ``pad(_:)`` leaves out), as `int32` on the backend, uploaded once a pass.
    let gathered: Tensor, scattered: Tensor
    let backend: any Backend

    /// nil where nothing is padded (every length is `sequence`): the padded form is then the unpadded one.
    public init?(lengths: [Int], batch: Int, sequence: Int, backend: any Backend) throws {
        guard lengths.count == batch, lengths.allSatisfy({ (1...sequence).contains($0) }) else {
            throw TensorError.invalidArgument(
                operation: "UnpaddedRows", reason: "need \(batch) sequence lengths in 1 … \(sequence), not \(lengths)")
        }
        guard lengths.contains(where: { $0 < sequence }) else { return nil }
        (self.batch, self.sequence, self.lengths, self.backend) = (batch, sequence, lengths, backend)
        rows = lengths.enumerated().flatMap { sequenceIndex, length in (0..<length).map { sequenceIndex * sequence + $0 } }
        let multiple = Self.rowMultiple(realRows: rows.count)
        count = min((rows.count + multiple - 1) / multiple * multiple, batch * sequence)
        let paddingRow = lengths.indices.first { lengths[$0] < sequence }.map { $0 * sequence + lengths[$0] } ?? 0
        gathered = try backend.tensor((rows + Array(repeating: paddingRow, count: count - rows.count)).map(Int32.init), shape: [count])
        scattered = try backend.tensor((rows + Array(repeating: batch * sequence, count: count - rows.count)).map(Int32.init), shape: [count])
    }

    /// The real rows of `padded` (`[batch·sequence, …]`), then the copies of a padding row → `[count, …]`.
    public func unpad(_ padded: Tensor) throws -> Tensor {
        guard padded.rank >= 1, padded.shape[0] == batch * sequence else {
            throw TensorError.shapeMismatch(operation: "UnpaddedRows.unpad", shapes: [padded.shape], reason: "expected \(batch)·\(sequence) rows")
        }
        return try backend.gatherRows(padded, rows: gathered)
    }

    /// `unpadded` (`[count, …]`) back in its padded places, zero rows at the padding (the copies of a padding row
    /// written to a row past the end, outside the tensor returned).
    public func pad(_ unpadded: Tensor) throws -> Tensor {
        guard unpadded.rank >= 1, unpadded.shape[0] == count else {
            throw TensorError.shapeMismatch(operation: "UnpaddedRows.pad", shapes: [unpadded.shape], reason: "expected \(count) rows")
        }
        let rest = Array(unpadded.shape.dropFirst()), extra = count > rows.count ? 1 : 0
        let padded = try backend.zeros([batch * sequence + extra] + rest, dtype: unpadded.dtype)
        try backend.scatterRows(unpadded, into: padded, rows: scattered)
        return extra == 0 ? padded : Tensor(shape: [batch * sequence] + rest, dtype: unpadded.dtype, storage: padded.storage)
    }
}
