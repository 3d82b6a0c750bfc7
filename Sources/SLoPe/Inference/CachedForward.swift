/// The forward pass of generation: several sequences at once, each continuing its own slot of a ``KeyValueCache``,
/// their new tokens packed one after another. Every linear layer runs once over all the packed rows (prompts being
/// prefilled and sequences decoding one token can share a call); the decoding sequences' attention is one call over
/// the cache in place, and each prompt attends over its own slot.
extension TransformerModel {
    /// Logits `[segments.count, vocabulary]` of the token after each segment: `tokens` holds the segments' new tokens
    /// in order (a prompt, or the last token chosen), each continuing its slot of `cache`, which then holds them.
    /// A step of one token per sequence runs as a recorded decode step (DecodeStep.swift): the tensor it returns is
    /// overwritten by the next such step of as many sequences.
    public func nextTokenLogits(tokens: [Int32], segments: [KeyValueCache.Segment], cache: KeyValueCache) throws -> Tensor {
        try cache.check(segments, tokens: tokens.count)
        guard tokens.allSatisfy({ (0..<Int32(configuration.vocabularySize)).contains($0) }) else {
            throw TensorError.invalidArgument(operation: "nextTokenLogits", reason: "a token id is outside the vocabulary (\(configuration.vocabularySize))")
        }
        if segments.allSatisfy({ $0.count == 1 }) { return try decodeStepLogits(tokens: tokens, segments: segments, cache: cache) }
        let positions = segments.flatMap { segment in (0..<segment.count).map { cache.lengths[segment.slot] + $0 } }
        var (x, pending) = (try embed(backend.tensor(tokens, shape: [tokens.count]), positions: positions), Tensor?.none)
        for (index, block) in blocks.enumerated() {
            (x, pending) = try block.run(x, pending: pending) { try block.attention.forward($0, segments: segments, cache: cache, layer: index) }
        }
        cache.advance(segments)
        // Only each segment's last row is projected onto the vocabulary (a prompt's other rows need no logits).
        var end = 0
        let lastRows = segments.map { segment in
            end += segment.count
            return end - 1
        }
        return try project(finalNorm.forward(backend.gatherRows(x, lastRows), addingIfAny: pending.map { try backend.gatherRows($0, lastRows) }).output)
    }
}

extension SelfAttention {
    /// Attention of packed segments (`x [Σ counts, hidden]`), each over its slot's cached keys and values and its own
    /// new ones, which are written to the cache's `layer` first. Sequences decoding one token share one
    /// ``Backend/decodeAttention(query:keys:values:starts:lengths:shape:)`` call over the cache in place; a prompt
    /// being prefilled attends causally over its slot's positions.
    func forward(_ x: Tensor, segments: [KeyValueCache.Segment], cache: KeyValueCache, layer: Int) throws -> Tensor {
        var (q, k, v) = try queryKeyValue(x)
        if let ropeBase { (q, k) = try rotate(q, k, segments: segments, cache: cache, base: ropeBase) }
        try cache.write(layer: layer, keys: k, values: v, segments: segments, backend: backend)
        var starts = [0], decoding: [Int] = []  // each segment's first packed row; the segments of one token
        for (index, segment) in segments.enumerated() {
            starts.append(starts[index] + segment.count)
            if segment.count == 1 { decoding.append(index) }
        }
        let shape = DecodeAttentionShape(queryHeads: heads, keyValueHeads: keyValueHeads, headDimension: headDimension)
        func decode(_ queries: Tensor) throws -> Tensor {
            try backend.decodeAttention(
                query: queries, keys: cache.keys[layer], values: cache.values[layer],
                starts: decoding.map { cache.row(slot: segments[$0].slot, position: 0) },
                lengths: decoding.map { cache.lengths[segments[$0].slot] + 1 }, shape: shape)
        }
        // Every segment one token (a decode step): its rows are the packed rows, in order.
        if decoding.count == segments.count { return try output.forward(decode(q)) }
        let attended = try backend.zeros(q.shape, dtype: q.dtype)
        if !decoding.isEmpty {
            let rows = decoding.map { starts[$0] }
            let decoded = try decode(backend.gatherRows(q, rows))
            try backend.moveRows(decoded, from: nil, into: attended, to: rows)
        }
        for (index, segment) in segments.enumerated() where segment.count > 1 {
            let past = cache.lengths[segment.slot], rows = starts[index]..<starts[index + 1]
            let (keys, values) = try cache.prefix(layer: layer, slot: segment.slot, count: past + segment.count, backend: backend)
            let shape = AttentionShape(
                batch: 1, queryLength: segment.count, keyLength: past + segment.count, queryHeads: heads, keyValueHeads: keyValueHeads,
                headDimension: headDimension)
            let result = try backend.attention(query: backend.gatherRows(q, Array(rows)), key: keys, value: values, shape: shape).output
            try backend.copyRows(result, 0..<segment.count, into: attended, at: rows.lowerBound)
        }
        return try output.forward(attended)
    }

    /// Queries and keys rotated at each row's position (after its slot's cached ones), every segment in one call each.
    private func rotate(_ q: Tensor, _ k: Tensor, segments: [KeyValueCache.Segment], cache: KeyValueCache, base: Float) throws -> (Tensor, Tensor) {
        let positions = segments.flatMap { segment in (0..<segment.count).map { cache.lengths[segment.slot] + $0 } }
        let rope = RotaryLayout(positions: positions, headDimension: headDimension, base: base)
        return (try backend.rotaryEmbedding(q, layout: rope, inverse: false), try backend.rotaryEmbedding(k, layout: rope, inverse: false))
    }
}

extension Backend {
    /// Rows `rows` of a matrix, in that order, as a new tensor.
    func gatherRows(_ x: Tensor, _ rows: [Int]) throws -> Tensor {
        if rows == Array(0..<x.shape[0]) { return x }
        let result = try zeros([rows.count] + x.shape.dropFirst(), dtype: x.dtype)
        try moveRows(x, from: rows, into: result, to: nil)
        return result
    }
}
