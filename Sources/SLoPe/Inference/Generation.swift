/// One sequence to generate: a prompt, how many tokens to add at most, how to choose them, and where to stop.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    public var sampler: TokenSampler
    /// Generation stops after any of these (it is the last token returned): the end of text, a chat model's end of turn.
    public var stopTokens: Set<Int32>

    public init(prompt: [Int32], maxTokens: Int, sampler: TokenSampler, stopTokens: Set<Int32> = []) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampler = sampler
        self.stopTokens = stopTokens
    }

    /// Why a sequence ends: `stop`, a stop token; `length`, its `maxTokens` or the room in its cache slot.
    public enum Finish: String, Sendable, Codable { case stop, length }

    /// Whether the sequence ends after `token`, its `generated`-th, with `cached` positions in a cache slot holding
    /// `capacity` (the last token chosen never enters the cache); nil while it goes on. The one rule `generate` and
    /// the server's scheduler both follow.
    public func finish(after token: Int32, generated: Int, cached: Int, capacity: Int) -> Finish? {
        if stopTokens.contains(token) { return .stop }
        return generated >= maxTokens || cached + 1 > capacity ? .length : nil
    }
}

extension TransformerModel {
    /// Readies the model for generation, after which it is inference-only (``isPreparedForInference``): its SLoPe
    /// layers merged with their adapters (``mergeForInference()``) unless `merging` is false, then each block's q, k
    /// and v stacked into one projection (``SelfAttention/stackQueryKeyValue()``) unless `stacking` is false — where
    /// they are dense or merged; unmerged SLoPe layers stay as they are.
    public func prepareForGeneration(merging: Bool = true, stacking: Bool = true) throws {
        if merging, !sparseWeights.isEmpty { try mergeForInference() }
        if stacking { for block in blocks { try block.attention.stackQueryKeyValue() } }
    }

    /// Continues every request's prompt at once, with a ``KeyValueCache`` slot per sequence: the prompts are
    /// prefilled together in one pass, then each step adds one token to every unfinished sequence in one pass, until
    /// each reaches its stop token, its `maxTokens` or the context length. Each sequence draws from its own sampler,
    /// so what it gets does not depend on the others. `onToken(request, token)` sees every token as it is chosen.
    /// `cache`, when given, is emptied and used instead of a new one: calls that reuse a cache reuse the decode steps
    /// recorded over it (DecodeStep.swift).
    public func generate(
        _ requests: [GenerationRequest], cache reused: KeyValueCache? = nil, onToken: (Int, Int32) -> Void = { _, _ in }
    ) throws -> [[Int32]] {
        let limit = configuration.contextLength
        for (index, request) in requests.enumerated() {
            let which = requests.count == 1 ? "the prompt" : "prompt \(index + 1)"
            guard !request.prompt.isEmpty else { throw TensorError.invalidArgument(operation: "generate", reason: "\(which) is empty") }
            guard request.prompt.count < limit else {
                throw TensorError.invalidArgument(operation: "generate", reason: "\(which) has \(request.prompt.count) tokens; the context holds \(limit)")
            }
            guard request.maxTokens >= 1 else { throw TensorError.invalidArgument(operation: "generate", reason: "maxTokens must be at least 1") }
            guard request.prompt.allSatisfy({ (0..<Int32(configuration.vocabularySize)).contains($0) }) else {
                throw TensorError.invalidArgument(operation: "generate", reason: "\(which) holds a token id outside the vocabulary (\(configuration.vocabularySize))")
            }
        }
        guard !requests.isEmpty else { return [] }
        // The last token chosen never enters the cache.
        let capacity = requests.map { min(limit, $0.prompt.count + $0.maxTokens - 1) }.max()!
        let cache = try reused ?? KeyValueCache(model: self, slots: requests.count, capacity: capacity)
        guard cache.slots >= requests.count, cache.capacity >= capacity else {
            throw TensorError.invalidArgument(
                operation: "generate", reason: "the cache given holds \(cache.slots) sequences of \(cache.capacity) positions; "
                    + "these requests need \(requests.count) of \(capacity)")
        }
        for slot in 0..<cache.slots { cache.reset(slot: slot) }
        var samplers = requests.map(\.sampler)
        var generated = [[Int32]](repeating: [], count: requests.count)
        var segments = requests.indices.map { KeyValueCache.Segment(slot: $0, count: requests[$0].prompt.count) }
        var tokens = requests.flatMap(\.prompt)
        while !segments.isEmpty {
            let logits = try nextTokenLogits(tokens: tokens, segments: segments, cache: cache)
            var stepSamplers = segments.map { samplers[$0.slot] }
            let chosen = try nextTokens(logits, samplers: &stepSamplers)
            for (segment, sampler) in zip(segments, stepSamplers) { samplers[segment.slot] = sampler }
            var next: [KeyValueCache.Segment] = []
            tokens = []
            for (row, segment) in segments.enumerated() {
                let slot = segment.slot, request = requests[slot]
                let token = chosen[row]
                generated[slot].append(token)
                onToken(slot, token)
                if request.finish(after: token, generated: generated[slot].count, cached: cache.lengths[slot], capacity: limit) == nil {
                    next.append(.init(slot: slot, count: 1))
                    tokens.append(token)
                }
            }
            segments = next
        }
        return generated
    }

    /// The token chosen from each row of `logits` (`[rows, vocabulary]`), row r by `samplers[r]`, on the backend: the
    /// argmax, or a draw (after top-k / top-p truncation where a sampler asks for it) with the uniform from the row's
    /// own generator, as ``TokenSampler/sample(_:)`` draws on the host. One int32 per row is read back, never the logits.
    public func nextTokens(_ logits: Tensor, samplers: inout [TokenSampler]) throws -> [Int32] {
        if samplers.allSatisfy({ $0.temperature == 0 }) { return try backend.int32s(backend.argmaxRows(logits)) }
        let temperatures = samplers.map { Float($0.temperature) }
        var candidates = logits
        if samplers.contains(where: { $0.temperature > 0 && ($0.topK != nil || $0.topP != nil) }) {
            candidates = try backend.truncatedLogits(
                logits, temperatures: temperatures, topK: samplers.map { $0.topK ?? 0 }, topP: samplers.map { Float($0.topP ?? 1) })
        }
        let uniforms = samplers.indices.map { row -> Float in
            samplers[row].temperature > 0 ? min(Float(samplers[row].generator.nextUniform()), Float(1).nextDown) : 0
        }
        return try backend.int32s(backend.sampleRows(candidates, temperatures: temperatures, uniforms: uniforms))
    }

    /// Continues `prompt` by up to `maxTokens` tokens, stopping early at one of `stopTokens` or the context length.
    /// `onToken` sees each new token as it is chosen (for streaming output).
    public func generate(
        prompt: [Int32], maxTokens: Int, sampler: TokenSampler, stopTokens: Set<Int32> = [], onToken: (Int32) -> Void = { _ in }
    ) throws -> [Int32] {
        let request = GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampler: sampler, stopTokens: stopTokens)
        return try generate([request]) { onToken($1) }[0]
    }
}
