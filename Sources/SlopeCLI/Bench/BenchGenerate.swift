import ArgumentParser
import SLoPe
import SlopeCUDA

/// `slope bench generate`: prefill and decode throughput of a model shape, dense and SLoPe (merged and unmerged), at
/// several batch sizes, through the same generation path `slope generate` takes.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill and decode tokens/s of a model shape: dense, SLoPe merged and unmerged, at several batch sizes.",
        discussion: """
            Random weights of the named shape (the speed does not depend on them), random prompts of --prompt-tokens, \
            greedy decoding of --new-tokens per sequence without a stop token. Prefill is the time to the first token of \
            every sequence (the prompts in one pass); decode is the rest. Dense batch 1 also gives the share of the \
            memory-bandwidth limit reached (weight bytes ÷ time per token ÷ the device's bandwidth). \
            bench/pytorch/bench_generate.py times transformers at the same shapes.
            """
    )

    @Option(help: "Where to run: \(BenchDevice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var device: BenchDevice = .cpu

    @Option(help: "Model shape: a named configuration or a JSON file (default: opt-1.3b on CUDA, tiny on the CPU).")
    var model: String?

    @Option(help: "Comma-separated batch sizes (sequences generated at once).")
    var batches = "1,8,32"

    @Option(parsing: .unconditional, help: "Prompt tokens per sequence (default: 512 on CUDA, 32 on the CPU).")
    var promptTokens: Int?

    @Option(parsing: .unconditional, help: "Tokens generated per sequence (default: 128 on CUDA, 16 on the CPU).")
    var newTokens: Int?

    @Option(help: "Comma-separated: dense, merged (SLoPe with adapters, one sparse GEMM per layer), unmerged.")
    var modes = "dense,merged,unmerged"

    @Option(parsing: .unconditional, help: "Adapter rank of the SLoPe modes.")
    var adapterRank = 64

    @Option(help: "Timed runs per measurement, the median reported.")
    var repeats = 3

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    typealias Mode = GenerationWorkload.Mode

    struct Result: Encodable {
        let mode: String
        let batch: Int
        let promptTokens: Int
        let newTokens: Int
        let prefillTokensPerSecond: Double
        let decodeTokensPerSecond: Double
        let decodeMillisecondsPerStep: Double
        /// Dense only: weight bytes ÷ time per token ÷ device bandwidth.
        let bandwidthShare: Double?
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard (promptTokens ?? 1) >= 1, (newTokens ?? 2) >= 2 else { throw ValidationError("--prompt-tokens must be ≥ 1 and --new-tokens ≥ 2") }
        guard adapterRank >= 1 else { throw ValidationError("--adapter-rank must be at least 1") }
        _ = try parsedBatches()
        _ = try parsedModes()
    }

    func parsedBatches() throws -> [Int] {
        try batches.split(separator: ",").map {
            guard let value = Int($0), value >= 1 else { throw ValidationError("--batches: '\($0)' is not a batch size ≥ 1") }
            return value
        }
    }

    func parsedModes() throws -> [Mode] {
        try modes.split(separator: ",").map {
            guard let mode = Mode(rawValue: String($0)) else {
                throw ValidationError("--modes: '\($0)' is not one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return mode
        }
    }

    func run() throws {
        let onGPU = device == .cuda
        let compute = try ComputeDevice.make(onGPU ? .cuda : .cpu)
        let backend = compute.backend
        let name = GenerationWorkload.modelName(model, onGPU: onGPU)
        let configuration = try ModelConfiguration.resolve(name)
        let (prompt, new) = GenerationWorkload.lengths(prompt: promptTokens, new: newTokens, onGPU: onGPU)
        guard prompt + new - 1 <= configuration.contextLength else {
            throw ValidationError("--prompt-tokens \(prompt) + --new-tokens \(new) exceed the context length \(configuration.contextLength)")
        }
        let dtype = compute.defaultDType
        let bandwidth = (backend as? CUDABackend).flatMap { ComputeDevice.memoryBandwidth(forGPU: $0.cudaDevice.name) }
        print("slope bench generate — \(name) (\(formatCount(configuration.parameterCount)) parameters), "
            + "\(backend.name), \(dtype), \(prompt) prompt + \(new) new tokens per sequence, greedy; median of \(repeats) runs after one warm-up")
        var table = TextTable(headers: ["mode", "batch", "prefill tok/s", "decode tok/s", "ms/step", "of bandwidth", "prefill vs dense", "decode vs dense"])
        var results: [Result] = []
        var dense: [Int: Result] = [:]
        var unrecorded: Set<String> = []
        for mode in try parsedModes() {
            let (network, weightBytes) = try GenerationWorkload.model(configuration, mode: mode, adapterRank: adapterRank, on: compute)
            for batch in try parsedBatches() {
                let requests = try GenerationWorkload.prompts(count: batch, length: prompt, vocabulary: configuration.vocabularySize).map {
                    GenerationRequest(prompt: $0, maxTokens: new, sampler: try TokenSampler(temperature: 0))
                }
                let clock = ContinuousClock()
                var samples: [(prefill: Double, decode: Double)] = []
                // One cache for every run, as a server keeps one: the warm-up run records the decode steps the
                // timed runs replay.
                let cache = try KeyValueCache(model: network, slots: batch, capacity: prompt + new - 1)
                for run in 0...repeats {
                    var prefilled: ContinuousClock.Instant?
                    let start = clock.now
                    _ = try network.generate(requests, cache: cache) { _, _ in if prefilled == nil { prefilled = clock.now } }
                    let end = clock.now
                    if run > 0 { samples.append((((prefilled ?? end) - start) / .seconds(1), (end - (prefilled ?? end)) / .seconds(1))) }
                }
                let prefill = median(samples.map(\.prefill)), decode = median(samples.map(\.decode))
                let stepSeconds = decode / Double(new - 1)
                let decodeRate = Double(batch * (new - 1)) / decode
                let share = mode == .dense && batch == 1 ? bandwidth.map { Double(weightBytes) / stepSeconds / $0 } : nil
                let result = Result(
                    mode: mode.rawValue, batch: batch, promptTokens: prompt, newTokens: new, prefillTokensPerSecond: Double(batch * prompt) / prefill,
                    decodeTokensPerSecond: decodeRate, decodeMillisecondsPerStep: 1000 * stepSeconds, bandwidthShare: share)
                results.append(result)
                if let reason = cache.unrecordedReason { unrecorded.insert(reason) }
                if mode == .dense { dense[batch] = result }
                let reference = mode == .dense ? nil : dense[batch]
                table.append([
                    mode.rawValue, "\(batch)", formatted(result.prefillTokensPerSecond, digits: 0), formatted(decodeRate, digits: 1),
                    formatted(result.decodeMillisecondsPerStep, digits: 2), share.map { formatted(100 * $0, digits: 1) + "%" } ?? "",
                    reference.map { formatted(result.prefillTokensPerSecond / $0.prefillTokensPerSecond, digits: 2) + "x" } ?? "",
                    reference.map { formatted(decodeRate / $0.decodeTokensPerSecond, digits: 2) + "x" } ?? "",
                ])
            }
        }
        print(table.render())
        print(unrecorded.isEmpty ? "decode steps: recorded once per batch size, then replayed (CUDA graphs on a GPU)"
              : "decode steps: run op by op — " + unrecorded.sorted().joined(separator: "; "))
        if let json {
            try writeJSON(results, to: json)
            print("wrote \(json)")
        }
    }
}
