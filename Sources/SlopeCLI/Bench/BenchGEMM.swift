import ArgumentParser
import SLoPe

/// `slope bench gemm`: raw float32 GEMM throughput and the N:M sparse kernel at the same shape.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Float32 GEMM GFLOP/s (all transpose combinations) and the N:M sparse GEMM against it."
    )

    @Option(help: "M = N = K.")
    var size = 1024

    @Option(help: "N:M pattern for the sparse GEMM.")
    var pattern = "2:4"

    @OptionGroup var timing: TimingOptions

    struct Result: Codable {
        let size: Int
        let measurement: String
        let milliseconds: Double
        /// Dense-equivalent GFLOP/s (2·M·N·K / time), so dense and sparse read on one scale.
        let effectiveGFLOPS: Double
    }

    func run() throws {
        guard size > 0 else { throw ValidationError("--size must be positive") }
        let nm = try NMPattern(parsing: pattern)
        let backend = CPUBackend()
        var generator = SeededGenerator(seed: 2)
        let a = try backend.randomNormal([size, size], using: &generator)
        let b = try backend.randomNormal([size, size], using: &generator)
        let c = try backend.zeros([size, size], dtype: .float32)
        let flops = 2 * Double(size) * Double(size) * Double(size)
        let (repeats, warmup) = timing.runs(on: .cpu)
        print("slope bench gemm — \(backend.name), \(size)³ float32, median of \(repeats) runs after \(warmup) warm-up")
        var results: [Result] = []
        for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
            let ms = try medianMilliseconds(repeats: repeats, warmup: warmup) {
                _ = try backend.gemm(a, b, transposeA: transA, transposeB: transB, alpha: 1, beta: 0, into: c, bias: nil)
            }
            results.append(Result(size: size, measurement: "dense \(transA ? "T" : "N")\(transB ? "T" : "N")", milliseconds: ms, effectiveGFLOPS: flops / ms / 1e6))
        }
        let sparse = try backend.compress(b, pattern: nm, mask: nil)
        let ms = try medianMilliseconds(repeats: repeats, warmup: warmup) {
            _ = try backend.sparseMatmul(a, sparse, bias: nil)
        }
        results.append(Result(size: size, measurement: "sparse \(nm) X·Wᵀ", milliseconds: ms, effectiveGFLOPS: flops / ms / 1e6))

        var table = TextTable(headers: ["measurement", "ms", "GFLOP/s (dense-equivalent)"])
        for result in results { table.append([result.measurement, formatted(result.milliseconds, digits: 3), formatted(result.effectiveGFLOPS, digits: 1)]) }
        print(table.render())
        let denseNT = results[1].milliseconds
        print("sparse \(nm) speedup over dense NT (same X·Wᵀ product): \(formatted(denseNT / ms))x")
        if let path = timing.json {
            try writeJSON(results, to: path)
            print("wrote \(path)")
        }
    }
}
