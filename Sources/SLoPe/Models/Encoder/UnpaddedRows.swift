/// The real tokens of a padded batch: row `i` of the unpadded form is row `rows[i]` of the padded `[batch·sequence,
/// …]` one. What works on rows alone — the linears, norms, activations and dropout of an encoder block — runs on
/// the real rows only (a BERT batch of sentence pairs is 20–25% padding); attention, which needs each sequence's
/// rows together, pads its operands back around its call (``SelfAttention/forward(_:batch:sequence:keyLengths:unpadded:)``).
public struct UnpaddedRows {
    public let batch: Int
    public let sequence: Int
    /// Each sequence's real tokens, at the start of its `sequence` rows.
    public let lengths: [Int]
    /// The padded row of each real token, sequence after sequence.
    public let rows: [Int]
    /// `rows` as `int32` on the backend, uploaded once for every gather and scatter of a pass.
    let index: Tensor
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
        index = try backend.tensor(rows.map(Int32.init), shape: [rows.count])
    }

    /// The real rows of `padded` (`[batch·sequence, …]`) → `[rows.count, …]`.
    public func unpad(_ padded: Tensor) throws -> Tensor {
        guard padded.rank >= 1, padded.shape[0] == batch * sequence else {
            throw TensorError.shapeMismatch(operation: "UnpaddedRows.unpad", shapes: [padded.shape], reason: "expected \(batch)·\(sequence) rows")
        }
        return try backend.gatherRows(padded, rows: index)
    }

    /// `unpadded` (`[rows.count, …]`) back in its padded places, zero rows at the padding.
    public func pad(_ unpadded: Tensor) throws -> Tensor {
        guard unpadded.rank >= 1, unpadded.shape[0] == rows.count else {
            throw TensorError.shapeMismatch(operation: "UnpaddedRows.pad", shapes: [unpadded.shape], reason: "expected \(rows.count) rows")
        }
        let padded = try backend.zeros([batch * sequence] + unpadded.shape.dropFirst(), dtype: unpadded.dtype)
        try backend.scatterRows(unpadded, into: padded, rows: index)
        return padded
    }
}
