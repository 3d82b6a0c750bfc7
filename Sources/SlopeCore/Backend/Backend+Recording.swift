/// Ops recorded once and replayed as one unit (``Backend/record(_:)``): on a GPU a CUDA graph, so the host work
/// of issuing them (hundreds of launches in a decode step) is paid once, at recording.
///
/// A replay runs the same ops on the same memory: they read their inputs' current contents and overwrite the
/// same output, which the next replay overwrites again.
public protocol RecordedWork: AnyObject {
    /// Runs the recorded ops (queued on the device, in order with the backend's other work) and returns their
    /// output.
    func replay() throws -> Tensor
}

/// Work recorded as the closure itself, replayed by calling it: what ``CPUBackend/recordsWork`` gives tests of the
/// code that records (the CPU has no launch cost to save).
final class ClosureReplay: RecordedWork {
    let work: () throws -> Tensor
    init(_ work: @escaping () throws -> Tensor) { self.work = work }
    func replay() throws -> Tensor { try work() }
}

/// The host-side forms: indices read back and the host-array ops run (the CPU backend's implementation, and a
/// backend's until it has its own).
extension Backend {
    public func scatterRows(_ source: Tensor, into destination: Tensor, rows: Tensor) throws {
        _ = try OperandChecks.scatterRows(source, into: destination, rows: rows)
        try moveRows(source, from: nil, into: destination, to: indices(rows, "scatterRows"))
    }

    public func gatherRows(_ source: Tensor, rows: Tensor) throws -> Tensor {
        let (shape, _) = try OperandChecks.gatherRows(source, rows: rows)
        let result = try zeros(shape, dtype: source.dtype)
        try moveRows(source, from: indices(rows, "gatherRows"), into: result, to: nil)
        return result
    }

    public func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, ranges: Tensor, maxLength: Int, shape: DecodeAttentionShape
    ) throws -> Tensor {
        try OperandChecks.decodeAttention(query: query, keys: keys, values: values, ranges: ranges, maxLength: maxLength, shape: shape)
        let bounds = try indices(ranges, "decodeAttention")
        guard bounds.suffix(bounds.count / 2).allSatisfy({ $0 <= maxLength }) else {
            throw TensorError.invalidArgument(operation: "decodeAttention", reason: "a length exceeds the maximum of \(maxLength)")
        }
        return try decodeAttention(
            query: query, keys: keys, values: values, starts: Array(bounds.prefix(bounds.count / 2)), lengths: Array(bounds.suffix(bounds.count / 2)),
            shape: shape)
    }

    public func rotaryEmbedding(_ x: Tensor, positions: Tensor, headDimension: Int, base: Float, positionLimit: Int) throws -> Tensor {
        _ = try OperandChecks.rotaryEmbedding(x, positions: positions, headDimension: headDimension, base: base, positionLimit: positionLimit)
        let rows = try indices(positions, "rotaryEmbedding")
        guard rows.allSatisfy({ (0..<positionLimit).contains($0) }) else {
            throw TensorError.invalidArgument(operation: "rotaryEmbedding", reason: "a position outside 0 ..< \(positionLimit)")
        }
        return try rotaryEmbedding(x, layout: RotaryLayout(positions: rows, headDimension: headDimension, base: base), inverse: false)
    }

    public func splitColumns(_ x: Tensor, widths: [Int], scatteringInto destinations: [Tensor?], rows: Tensor) throws -> [Tensor?] {
        try OperandChecks.splitColumns(x, widths: widths, scatteringInto: destinations, rows: rows)
        return try zip(splitColumns(x, widths: widths), destinations).map { part, destination in
            guard let destination else { return part }
            try scatterRows(part, into: destination, rows: rows)
            return nil
        }
    }

    public func write(_ values: [Int32], into tensor: Tensor) throws {
        guard tensor.dtype == .int32, tensor.count == values.count else {
            throw TensorError.invalidArgument(operation: "write", reason: "\(values.count) int32 values do not fill a \(tensor.dtype) tensor of \(tensor.shape)")
        }
        try copy(self.tensor(values, shape: tensor.shape), into: tensor)
    }

    public func record(_ work: @escaping () throws -> Tensor) throws -> (any RecordedWork)? { nil }
    public var recordsWork: Bool { false }

    /// An int32 tensor of indices, read back.
    private func indices(_ tensor: Tensor, _ operation: String) throws -> [Int] {
        guard tensor.dtype == .int32, tensor.rank == 1 else {
            throw TensorError.invalidArgument(operation: operation, reason: "indices must be an int32 vector, not \(tensor.dtype) \(tensor.shape)")
        }
        return try int32s(tensor).map(Int.init)
    }
}
