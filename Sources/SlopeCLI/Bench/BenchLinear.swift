import ArgumentParser
import SLoPe
import SlopeCUDA

/// `slope bench linear`: dense `Linear` against SLoPe's `SparseLinear` for the same shapes.
struct BenchLinear: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linear",
        abstract: "Dense Linear vs SLoPe SparseLinear: forward, backward dX and dW, optimizer step, whole step, merged inference.",
        discussion: """
            Each shape is TOKENSxINxOUT (Y[tokens, out] = X[tokens, in]·Wᵀ). Inputs are random; every number is the \
            median of --repeats runs after --warmup runs, and speedups are dense time / SLoPe time from the same run.
            """
    )

    @Option(help: "Where to run: \(BenchDevice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var device: BenchDevice = .cpu

    @Option(help: "Comma-separated TOKENSxINxOUT shapes (default: 512 tokens at d = 1024 on the CPU; OPT-1.3B…66B linears at 8192 and 16384 tokens on CUDA).")
    var shapes: String?

    @Option(help: "N:M pattern of the sparse weights.")
    var pattern = "2:4"

    @Option(help: "Element type: float32 or bfloat16 (default: float32 on the CPU, which computes in float32 either way; bfloat16 on CUDA).")
    var dtype: String?

    @Option(help: "Adapter rank for merged inference (default: in/64).")
    var adapterRank: Int?

    @OptionGroup var timing: TimingOptions

    struct Shape: Codable {
        let tokens: Int, inFeatures: Int, outFeatures: Int
    }

    struct Result: Encodable {
        let shape: Shape
        let measurement: String
        let denseMilliseconds: Double
        let sparseMilliseconds: Double
        var speedup: Double { denseMilliseconds / sparseMilliseconds }

        enum CodingKeys: String, CodingKey { case shape, measurement, denseMilliseconds, sparseMilliseconds, speedup }
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(shape, forKey: .shape)
            try container.encode(measurement, forKey: .measurement)
            try container.encode(denseMilliseconds, forKey: .denseMilliseconds)
            try container.encode(sparseMilliseconds, forKey: .sparseMilliseconds)
            try container.encode(speedup, forKey: .speedup)
        }
    }

    /// OPT-1.3B … OPT-66B hidden sizes: d×d, d×4d and 4d×d linears.
    static let optShapes: String = [8192, 16384].flatMap { tokens in
        [2048, 2560, 4096, 5120, 7168, 9216].flatMap { d in ["\(tokens)x\(d)x\(d)", "\(tokens)x\(d)x\(4 * d)", "\(tokens)x\(4 * d)x\(d)"] }
    }.joined(separator: ",")

    func parsedShapes() throws -> [Shape] {
        let text = shapes ?? (device == .cuda ? Self.optShapes : "512x1024x1024,512x1024x4096,512x4096x1024")
        return try text.split(separator: ",").map { text in
            let parts = text.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("shape '\(text)' is not TOKENSxINxOUT, e.g. 512x1024x4096")
            }
            return Shape(tokens: parts[0], inFeatures: parts[1], outFeatures: parts[2])
        }
    }

    func run() throws {
        let nm = try NMPattern(parsing: pattern)
        guard let elementType = DType(rawValue: dtype ?? (device == .cuda ? "bfloat16" : "float32")), [.float32, .bfloat16].contains(elementType) else {
            throw ValidationError("--dtype must be float32 or bfloat16")
        }
        let (backend, time, clock) = try device.backend(timing)
        print("slope bench linear — \(backend.name), \(elementType), \(nm), \(clock)")
        var table = TextTable(headers: ["tokens×in×out", "measurement", "dense ms", "SLoPe ms", "speedup"])
        var results: [Result] = []
        for shape in try parsedShapes() {
            // X, W, Y and their gradients, with room for both layers: refused before allocating when it cannot fit.
            let (t, din, dout) = (shape.tokens, shape.inFeatures, shape.outFeatures)
            let elements = [CheckedSize.product([t, din]), CheckedSize.product([din, dout]), CheckedSize.product([t, dout])]
                .reduce(Optional(0)) { total, term in total.flatMap { a in term.flatMap { CheckedSize.sum(a, $0) } } }
            try MemoryBudget.require(elements.flatMap { CheckedSize.product([$0, 4, elementType.byteSize]) },
                                     for: "benchmarking the \(t)×\(din)×\(dout) layer", on: backend)
            for result in try measure(shape, pattern: nm, dtype: elementType, backend: backend, time: time) {
                results.append(result)
                table.append([
                    "\(shape.tokens)×\(shape.inFeatures)×\(shape.outFeatures)", result.measurement,
                    formatted(result.denseMilliseconds), formatted(result.sparseMilliseconds), formatted(result.speedup) + "x",
                ])
            }
        }
        print(table.render())
        if let gpu = backend as? CUDABackend {
            print("\nsparse GEMM routes chosen (median ms of each candidate):")
            for choice in gpu.sparseGEMMChoices {
                let candidates = choice.milliseconds.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value, digits: 3))" }.joined(separator: ", ")
                print("  \(choice.shape): \(choice.route)  [\(candidates)]")
                for (route, reason) in choice.failures.sorted(by: { $0.key < $1.key }) { print("    \(route) could not run: \(reason)") }
            }
        }
        if let path = timing.json {
            try writeJSON(results, to: path)
            print("wrote \(path)")
        }
    }

    private func measure(_ shape: Shape, pattern: NMPattern, dtype: DType, backend: any Backend, time: MedianTimer) throws -> [Result] {
        var generator = SeededGenerator(seed: 1)
        let dense = try Linear(inFeatures: shape.inFeatures, outFeatures: shape.outFeatures, dtype: dtype, backend: backend, generator: &generator)
        let sparse = try SparseLinear(converting: dense, pattern: pattern)
        let x = try backend.randomNormal([shape.tokens, shape.inFeatures], dtype: dtype, using: &generator)
        let dy = try backend.randomNormal([shape.tokens, shape.outFeatures], dtype: dtype, using: &generator)
        let denseOptimizer = AdamW(parameters: dense.parameters, backend: backend)
        let sparseOptimizer = try SparseAdamW(weights: sparse.sparseWeights, backend: backend)
        let biasOptimizer = AdamW(parameters: sparse.parameters, backend: backend)

        var results: [Result] = []
        func record(_ name: String, _ denseTime: Double, _ sparseTime: Double) {
            results.append(Result(shape: shape, measurement: name, denseMilliseconds: denseTime, sparseMilliseconds: sparseTime))
        }
        record("forward", try time { _ = try dense.forward(x) }, try time { _ = try sparse.forward(x) })
        record("backward dX", try time { _ = try dense.inputGradient(dy) }, try time { _ = try sparse.weight.inputGradient(dy) })
        record(
            "backward dW (+ bias)", try time { try dense.accumulateWeightGradients(outputGradient: dy, input: x) },
            try time { try sparse.accumulateWeightGradients(outputGradient: dy, input: x) })
        record("backward (dX + dW)", try time { _ = try dense.backward(dy) }, try time { _ = try sparse.backward(dy) })
        record(
            "optimizer step", try time { try denseOptimizer.step() },
            try time {
                try sparseOptimizer.step()
                try biasOptimizer.step()
            })
        record(
            "whole layer step",
            try time {
                _ = try dense.forward(x)
                _ = try dense.backward(dy)
                try denseOptimizer.step()
                try denseOptimizer.zeroGradients()
            },
            try time {
                _ = try sparse.forward(x)
                _ = try sparse.backward(dy)
                try sparseOptimizer.step()
                try biasOptimizer.step()
                try sparseOptimizer.zeroGradients()
                try biasOptimizer.zeroGradients()
            })
        let rank = adapterRank ?? max(1, shape.inFeatures / 64)
        try sparse.attachAdapter(rank: rank, generator: &generator)
        try sparse.adapter?.pruneDown(pattern: pattern)
        let merged = try sparse.merged()
        record("inference, adapter r=\(rank) merged", try time { _ = try dense.forward(x) }, try time { _ = try merged.forward(x) })
        return results
    }
}
