/// The forward pass of generation: several sequences at once, each continuing its own slot of a ``KeyValueCache``,
/// their new tokens packed one after another. Every linear layer runs once over all the packed rows (prompts being
/// prefilled and sequences decoding one token can share a call); attention runs per sequence, over its own cache.
extension TransformerModel {
    /// Logits `[segments.count, vocabulary]` of the token after each segment: `tokens` holds the segments' new tokens
    /// in order (a prompt, or the last token chosen), each continuing its slot of `cache`, which then holds them.
    public func nextTokenLogits(tokens: [Int32], segments: [KeyValueCache.Segment], cache: KeyValueCache) throws -> Tensor {
        try cache.check(segments, tokens: tokens.count)
        let positions = segments.flatMap { segment in (0..<segment.count).map { cache.lengths[segment.slot] + $0 } }
        var x = try embed(backend.tensor(tokens, shape: [tokens.count]), positions: positions)
        for (index, block) in blocks.enumerated() {
            x = try block.run(x) { try block.attention.forward($0, segments: segments, cache: cache, layer: index) }
        }
        cache.advance(segments)
        // Only each segment's last row is projected onto the vocabulary (a prompt's other rows need no logits).
        var last = x
        if segments.contains(where: { $0.count > 1 }) {
            last = try backend.zeros([segments.count, x.shape[1]], dtype: x.dtype)
            var end = 0
            for (index, segment) in segments.enumerated() {
                end += segment.count
                try backend.copyRows(x, (end - 1)..<end, into: last, at: index)
            }
        }
        return try project(finalNorm.forward(last))
    }
}

extension SelfAttention {
    /// Attention of packed segments (`x [Σ counts, hidden]`), each over its slot's cached keys and values and its own
    /// new ones, which are written to the cache's `layer`.
    func forward(_ x: Tensor, segments: [KeyValueCache.Segment], cache: KeyValueCache, layer: Int) throws -> Tensor {
        let q = try query.forward(x), k = try key.forward(x), v = try value.forward(x)
        var outputs: [Tensor] = []
        var start = 0
        for segment in segments {
            let rows = start..<(start + segment.count)
            start += segment.count
            let past = cache.lengths[segment.slot]
            var (segmentQueries, segmentKeys) = (try rowsOf(q, rows), k)
            var keyRows = rows
            if let ropeBase {
                let rope = RotaryLayout(sequenceLength: segment.count, positionOffset: past, headDimension: headDimension, base: ropeBase)
                segmentQueries = try backend.rotaryEmbedding(segmentQueries, layout: rope, inverse: false)
                segmentKeys = try backend.rotaryEmbedding(rowsOf(k, rows), layout: rope, inverse: false)
                keyRows = 0..<segment.count
            }
            let (keys, values) = try cache.append(
                layer: layer, slot: segment.slot, keys: (segmentKeys, keyRows), values: (v, rows), backend: backend)
            let shape = AttentionShape(
                batch: 1, queryLength: segment.count, keyLength: past + segment.count, queryHeads: heads, keyValueHeads: keyValueHeads,
                headDimension: headDimension)
            outputs.append(try backend.attention(query: segmentQueries, key: keys, value: values, shape: shape).output)
        }
        return try output.forward(outputs.count == 1 ? outputs[0] : backend.concatenateRows(outputs))
    }

    /// Rows of a packed matrix as their own tensor (the whole tensor when that is all of it).
    private func rowsOf(_ x: Tensor, _ rows: Range<Int>) throws -> Tensor {
        guard rows != 0..<x.shape[0] else { return x }
        let part = try backend.zeros([rows.count, x.shape[1]], dtype: x.dtype)
        try backend.copyRows(x, rows, into: part, at: 0)
        return part
    }
}
