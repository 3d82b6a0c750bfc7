/// Generation's decode step — one new token for each of several sequences — run from inputs already on the device,
/// so that it can be recorded once per batch size and then replayed (``Backend/record(_:)``, a CUDA graph on the
/// GPU): the host issues one launch per step instead of several hundred, and a step's time is the GPU's.
///
/// The first step of a batch size runs as it comes (it compiles kernels and times GEMM routes, which a recording
/// cannot hold); the second is recorded and every later one replays it, its inputs rewritten in place.
///
/// Where steps are recorded, a step's sequences are padded to the next of a few batch sizes
/// (``RecordedDecodeSteps/paddedBatch(_:)``) by sequences of one token over the cache's scratch row, whose logits are
/// dropped: a server whose batch wanders over 1…32 sequences records 7 steps, not 32, and its GEMMs meet 7 token
/// counts. A decode step is bound by reading the weights, so the padding rows cost little.
extension TransformerModel {
    /// Logits `[segments.count, vocabulary]` after one token for each of `segments` (all of count 1); `tokens` in
    /// segment order. A replayed step returns the same tensor each time: read it before the next step.
    func decodeStepLogits(tokens: [Int32], segments: [KeyValueCache.Segment], cache: KeyValueCache) throws -> Tensor {
        let batch = backend.recordsWork && cache.recordedSteps.unrecorded == nil
            ? RecordedDecodeSteps.paddedBatch(segments.count) : segments.count
        let values = DecodeStepValues(
            tokens: tokens, segments: segments, cache: cache, learnedPositions: positionEmbedding != nil,
            rotary: blocks.first?.attention.ropeBase != nil, padding: batch - segments.count)
        let logits = try decodeStep(values, batch: batch, cache: cache)
        cache.advance(segments)  // (only once the step has run: a failed one leaves the cache as it was)
        return batch == segments.count ? logits : try backend.gatherRows(logits, Array(0..<segments.count))
    }

    /// The step replayed, recorded, or run op by op (see above).
    private func decodeStep(_ values: DecodeStepValues, batch: Int, cache: KeyValueCache) throws -> Tensor {
        let steps = cache.recordedSteps
        if let step = steps.step(batch) {
            try values.write(into: step.inputs, backend: backend)
            return try step.work.replay()
        }
        let inputs = try values.upload(to: backend)
        guard steps.unrecorded == nil, steps.warmed.contains(batch) else {
            steps.warmed.insert(batch)
            return try decodeStepLogits(inputs, cache: cache)
        }
        let work: (any RecordedWork)?
        do {
            work = try backend.record { [unowned self, unowned cache] in try self.decodeStepLogits(inputs, cache: cache) }
        } catch {
            steps.unrecorded = "recording failed: \(error)"
            return try decodeStepLogits(inputs, cache: cache)
        }
        guard let work else {
            steps.unrecorded = "\(backend.device) records no work"
            return try decodeStepLogits(inputs, cache: cache)
        }
        steps.keep((inputs, work), for: batch)
        return try work.replay()
    }

    /// The step's ops, reading nothing from the host: embeddings, every block over the cache, the logits.
    func decodeStepLogits(_ inputs: DecodeStepInputs, cache: KeyValueCache) throws -> Tensor {
        var (x, pending) = (try embed(inputs.tokens, positionIDs: inputs.positionIDs), Tensor?.none)
        for (index, block) in blocks.enumerated() {
            (x, pending) = try block.run(x, pending: pending) { try block.attention.decode($0, inputs: inputs, cache: cache, layer: index) }
        }
        return try project(finalNorm.forward(x, addingIfAny: pending).output)
    }
}

extension SelfAttention {
    /// One row per sequence: its new key and value written to the cache's `layer` at `inputs.cacheRows`, then its
    /// query attending over its cached rows (`inputs.ranges`).
    /// Stacked q/k/v write the new values — and the keys, where no rotation comes first — into the cache as the
    /// projection's output is split (one launch instead of a split and two row moves).
    func decode(_ x: Tensor, inputs: DecodeStepInputs, cache: KeyValueCache, layer: Int) throws -> Tensor {
        let rotary = ropeBase.flatMap { base in inputs.positions.map { (base, $0) } }
        var q: Tensor, k: Tensor?, v: Tensor?
        if let stacked = stackedQueryKeyValue {
            let parts = try stacked.forward(x, scatteringInto: [nil, rotary == nil ? cache.keys[layer] : nil, cache.values[layer]], rows: inputs.cacheRows)
            (q, k, v) = (parts[0]!, parts[1], parts[2])
        } else {
            (q, k, v) = try queryKeyValue(x)
        }
        if let (base, positions) = rotary, let unrotated = k {
            func rotate(_ t: Tensor) throws -> Tensor {
                try backend.rotaryEmbedding(t, positions: positions, headDimension: headDimension, base: base, positionLimit: cache.capacity)
            }
            (q, k) = (try rotate(q), try rotate(unrotated))
        }
        if let k { try backend.scatterRows(k, into: cache.keys[layer], rows: inputs.cacheRows) }
        if let v { try backend.scatterRows(v, into: cache.values[layer], rows: inputs.cacheRows) }
        let shape = DecodeAttentionShape(queryHeads: heads, keyValueHeads: keyValueHeads, headDimension: headDimension)
        return try output.forward(backend.decodeAttention(
            query: q, keys: cache.keys[layer], values: cache.values[layer], ranges: inputs.ranges, maxLength: cache.capacity, shape: shape))
    }
}

/// A decode step's inputs on the device (`int32`, one per sequence unless said).
struct DecodeStepInputs {
    let tokens: Tensor
    /// Each sequence's position (where its new token sits in its slot), for rotary embeddings; nil without them.
    let positions: Tensor?
    /// Learned position embeddings' rows (the position plus OPT's offset); nil without learned positions.
    let positionIDs: Tensor?
    /// The cache row each new key and value goes to.
    let cacheRows: Tensor
    /// `[2·sequences]`: each sequence's first cache row, then its length with the new token.
    let ranges: Tensor
}

/// The host-side values of ``DecodeStepInputs`` for one step.
struct DecodeStepValues: Equatable {
    var tokens: [Int32]
    var positions: [Int32]?
    var positionIDs: [Int32]?
    var cacheRows: [Int32]
    var ranges: [Int32]

    /// Position ids for learned position embeddings (`learnedPositions`), positions for rotary ones (`rotary`): only
    /// what the model reads is uploaded each step. `padding` sequences follow the real ones: token 0 at position 0,
    /// written to and attending over the cache's scratch row alone.
    init(tokens: [Int32], segments: [KeyValueCache.Segment], cache: KeyValueCache, learnedPositions: Bool, rotary: Bool, padding: Int = 0) {
        let lengths = segments.map { cache.lengths[$0.slot] } + Array(repeating: 0, count: padding)
        self.tokens = tokens + Array(repeating: 0, count: padding)
        positions = rotary ? lengths.map { Int32($0) } : nil
        positionIDs = learnedPositions ? lengths.map { Int32(ModelConfiguration.positionOffset + $0) } : nil
        let starts = segments.map { cache.row(slot: $0.slot, position: 0) } + Array(repeating: cache.scratchRow, count: padding)
        cacheRows = zip(starts, lengths).map { Int32($0 + $1) }
        ranges = starts.map { Int32($0) } + lengths.map { Int32($0 + 1) }
    }

    /// New tensors holding these values.
    func upload(to backend: any Backend) throws -> DecodeStepInputs {
        func vector(_ values: [Int32]) throws -> Tensor { try backend.tensor(values, shape: [values.count]) }
        return DecodeStepInputs(
            tokens: try vector(tokens), positions: try positions.map(vector), positionIDs: try positionIDs.map(vector),
            cacheRows: try vector(cacheRows), ranges: try vector(ranges))
    }

    /// These values written over a recorded step's inputs.
    func write(into inputs: DecodeStepInputs, backend: any Backend) throws {
        try backend.write(tokens, into: inputs.tokens)
        if let positions, let target = inputs.positions { try backend.write(positions, into: target) }
        if let positionIDs, let target = inputs.positionIDs { try backend.write(positionIDs, into: target) }
        try backend.write(cacheRows, into: inputs.cacheRows)
        try backend.write(ranges, into: inputs.ranges)
    }
}

/// The decode steps a ``KeyValueCache`` has recorded, by batch size; they write into its tensors, so they live and
/// die with it. Each holds its intermediates' memory (a step's activations and logits) while kept, so only the
/// `limit` most recently used are: a server whose batch size wanders records again what it dropped.
final class RecordedDecodeSteps {
    typealias Step = (inputs: DecodeStepInputs, work: any RecordedWork)
    let limit: Int
    private(set) var steps: [Int: Step] = [:]
    /// Batch sizes of `steps`, least recently used first.
    private var order: [Int] = []
    /// Batch sizes that have run once as they came.
    var warmed: Set<Int> = []
    /// Why steps run as they come instead of recorded (the backend records nothing, or recording failed); nil while
    /// they may be recorded.
    var unrecorded: String?

    init(limit: Int = 8) { self.limit = max(limit, 1) }

    /// The batch size a decode step of `sequences` is padded to where steps are recorded: 1, 2, 4, 8, then the next
    /// multiple of 8 (1…32 sequences give 7 sizes, within the 8 recordings kept).
    static func paddedBatch(_ sequences: Int) -> Int {
        sequences <= 8 ? (sequences <= 1 ? 1 : 1 << (Int.bitWidth - (sequences - 1).leadingZeroBitCount)) : (sequences + 7) / 8 * 8
    }

    /// The step recorded for `batch` sequences, now the most recently used.
    func step(_ batch: Int) -> Step? {
        guard let step = steps[batch] else { return nil }
        order.removeAll { $0 == batch }
        order.append(batch)
        return step
    }

    /// Keeps `step` for `batch` sequences, dropping the least recently used beyond the limit.
    func keep(_ step: Step, for batch: Int) {
        steps[batch] = step
        order.removeAll { $0 == batch }
        order.append(batch)
        while order.count > limit { steps[order.removeFirst()] = nil }
    }
}
