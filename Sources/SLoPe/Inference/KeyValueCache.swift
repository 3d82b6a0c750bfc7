/// Keys and values of the sequences being generated: `slots` sequences of up to `capacity` positions each, in
/// every layer, allocated once and written in place as tokens are added (nothing of the past is copied to append).
/// A slot is one sequence; a finished sequence's slot is ``reset(slot:)`` and taken by the next one.
public final class KeyValueCache {
    public let slots: Int
    /// Positions a slot holds at most.
    public let capacity: Int
    /// Positions each slot holds now.
    public private(set) var lengths: [Int]
    /// Per layer: keys and values `[slots·capacity + 1, keyValueHeads·headDimension]`, slot s at rows
    /// `s·capacity …`; the last row is ``scratchRow``.
    let keys: [Tensor]
    let values: [Tensor]
    /// Decode steps recorded to run over this cache's tensors.
    let recordedSteps = RecordedDecodeSteps()

    /// New tokens of one sequence, continuing slot `slot`: a prompt to prefill, or the last token chosen.
    public struct Segment: Sendable, Equatable {
        public var slot: Int
        public var count: Int
        public init(slot: Int, count: Int) {
            self.slot = slot
            self.count = count
        }
    }

    /// A cache for `model`. `capacity` may not exceed the context length of a model with learned positions.
    public init(model: TransformerModel, slots: Int, capacity: Int) throws {
        let c = model.configuration
        guard slots >= 1, capacity >= 1 else {
            throw TensorError.invalidArgument(operation: "KeyValueCache", reason: "needs at least one slot of at least one position")
        }
        guard capacity <= c.contextLength || model.positionEmbedding == nil else {
            throw TensorError.invalidArgument(
                operation: "KeyValueCache", reason: "\(capacity) positions exceed the model's context length \(c.contextLength)")
        }
        let width = c.keyValueHeads * c.headDimension
        let rows = CheckedSize.product([slots, capacity]).map { $0 + 1 }  // (+ the scratch row)
        let bytes = rows.flatMap { CheckedSize.product([2, c.layers, $0, width, model.dtype.byteSize]) }
        try MemoryBudget.require(
            bytes, for: "the KV cache of \(slots) sequences × \(capacity) positions (fewer sequences or tokens at once need less)",
            on: model.backend)
        let (backend, shape) = (model.backend, [slots * capacity + 1, width])
        keys = try (0..<c.layers).map { _ in try backend.zeros(shape, dtype: model.dtype) }
        values = try (0..<c.layers).map { _ in try backend.zeros(shape, dtype: model.dtype) }
        self.slots = slots
        self.capacity = capacity
        lengths = Array(repeating: 0, count: slots)
    }

    /// Why decode steps over this cache run op by op instead of replayed from a recording; nil while they are
    /// (or may yet be) recorded.
    public var unrecordedReason: String? { recordedSteps.unrecorded }

    /// Bytes the cache holds on its device.
    public var byteCount: Int { (keys + values).map(\.byteCount).reduce(0, +) }

    /// Empties `slot` for a new sequence.
    public func reset(slot: Int) { lengths[slot] = 0 }

    /// Checks that `segments` can be appended: distinct slots in range, at least one token each, room left.
    func check(_ segments: [Segment], tokens: Int) throws {
        func fail(_ reason: String) -> TensorError { .invalidArgument(operation: "KeyValueCache", reason: reason) }
        guard !segments.isEmpty, segments.map(\.count).reduce(0, +) == tokens else {
            throw fail("the segments hold \(segments.map(\.count).reduce(0, +)) tokens, not the \(tokens) given")
        }
        guard Set(segments.map(\.slot)).count == segments.count else { throw fail("a slot appears twice in one call") }
        for segment in segments {
            guard (0..<slots).contains(segment.slot) else { throw fail("slot \(segment.slot) is not one of the \(slots)") }
            guard segment.count >= 1 else { throw fail("slot \(segment.slot) gets no tokens") }
            guard lengths[segment.slot] + segment.count <= capacity else {
                throw fail("slot \(segment.slot) holds \(lengths[segment.slot]) positions; \(segment.count) more exceed its \(capacity)")
            }
        }
    }

    /// The cache row of `slot`'s position `position`.
    func row(slot: Int, position: Int) -> Int { slot * capacity + position }

    /// A row of no slot: the padding sequences of a decode step padded to a recorded batch size
    /// (``RecordedDecodeSteps/paddedBatch(_:)``) write their keys and values there and attend to it alone.
    var scratchRow: Int { slots * capacity }

    /// Writes the new keys and values of every segment (`k`, `v [Σ counts, width]`, packed as the segments are) after
    /// its slot's positions in `layer`, in one call each.
    func write(layer: Int, keys k: Tensor, values v: Tensor, segments: [Segment], backend: any Backend) throws {
        let rows = segments.flatMap { segment in (0..<segment.count).map { row(slot: segment.slot, position: lengths[segment.slot] + $0) } }
        try backend.moveRows(k, from: nil, into: keys[layer], to: rows)
        try backend.moveRows(v, from: nil, into: values[layer], to: rows)
    }

    /// `slot`'s keys and values of positions `0 ..< count` in `layer`, copied out (attention over a prompt reads whole
    /// tensors).
    func prefix(layer: Int, slot: Int, count: Int, backend: any Backend) throws -> (keys: Tensor, values: Tensor) {
        let start = row(slot: slot, position: 0)
        let width = keys[layer].shape[1]
        let (k, v) = (try backend.zeros([count, width], dtype: keys[layer].dtype), try backend.zeros([count, width], dtype: values[layer].dtype))
        try backend.copyRows(keys[layer], start..<(start + count), into: k, at: 0)
        try backend.copyRows(values[layer], start..<(start + count), into: v, at: 0)
        return (k, v)
    }

    /// Counts the segments' tokens as held, once every layer has them.
    func advance(_ segments: [Segment]) {
        for segment in segments { lengths[segment.slot] += segment.count }
    }
}
