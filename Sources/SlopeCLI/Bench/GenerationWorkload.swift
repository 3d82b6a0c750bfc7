import SLoPe

/// What the generation benchmarks (`bench generate`, `bench serve`) run: random weights of a model shape, dense or
/// SLoPe with adapters (merged into one sparse GEMM per layer, or not), and random prompts.
enum GenerationWorkload {
    enum Mode: String, CaseIterable { case dense, merged, unmerged }

    /// The shape's name: `--model`, else opt-1.3b on a GPU and tiny on the CPU.
    static func modelName(_ given: String?, onGPU: Bool) -> String { given ?? (onGPU ? "opt-1.3b" : "tiny") }

    /// Prompt and generated tokens per sequence: as given, else 512 + 128 on a GPU and 32 + 16 on the CPU.
    static func lengths(prompt: Int?, new: Int?, onGPU: Bool) -> (prompt: Int, new: Int) {
        (prompt ?? (onGPU ? 512 : 32), new ?? (onGPU ? 128 : 16))
    }

    /// The model readied for generation, and the bytes of its weights before that (merged and stacked layers hold
    /// theirs outside `parameters`): what a dense decode step reads.
    static func model(
        _ configuration: ModelConfiguration, mode: Mode, adapterRank: Int, on compute: ComputeDevice
    ) throws -> (model: TransformerModel, weightBytes: Int) {
        let network = try TransformerModel(configuration: configuration, dtype: compute.defaultDType, backend: compute.backend, seed: 1)
        if mode != .dense {
            try network.convertToSLoPe()
            _ = try network.attachAdapters(rank: adapterRank, seed: 2)
        }
        let weightBytes = network.parameters.map(\.value.byteCount).reduce(0, +)
        try GenerationPreparation.prepare(network, merging: mode == .merged)
        return (network, weightBytes)
    }

    /// `count` prompts of `length` token ids, the same every run.
    static func prompts(count: Int, length: Int, vocabulary: Int) -> [[Int32]] {
        var generator = SeededGenerator(seed: 7)
        return (0..<count).map { _ in (0..<length).map { _ in Int32(generator.next() % UInt64(vocabulary)) } }
    }
}
