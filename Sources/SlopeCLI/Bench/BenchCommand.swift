import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time layers and kernels: medians over repeated runs on random inputs.",
        subcommands: [BenchLinear.self, BenchAttention.self, BenchGEMM.self, BenchGenerate.self, BenchServe.self]
    )
}

/// Devices a benchmark can run on in this build.
enum BenchDevice: String, ExpressibleByArgument, CaseIterable {
    case cpu
    case cuda
}

/// Options every benchmark shares.
struct TimingOptions: ParsableArguments {
    @Option(help: "Timed runs per measurement, the median reported (default: 50 on CUDA, 10 on the CPU).")
    var repeats: Int?

    @Option(help: "Untimed warm-up runs before timing (default: 10 on CUDA, 2 on the CPU).")
    var warmup: Int?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (repeats ?? 1) >= 1, (warmup ?? 0) >= 0 else { throw ValidationError("--repeats must be ≥ 1 and --warmup ≥ 0") }
    }

    /// Runs on `device`: a GPU run takes well under a millisecond per repeat at most shapes, so it affords
    /// more (and its medians need them: clocks and neighbours vary more than on the CPU).
    func runs(on device: BenchDevice) -> (repeats: Int, warmup: Int) {
        (repeats ?? (device == .cuda ? 50 : 10), warmup ?? (device == .cuda ? 10 : 2))
    }
}
