import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time layers and kernels: medians over repeated runs on random inputs.",
        subcommands: [BenchLinear.self, BenchAttention.self, BenchGEMM.self]
    )
}

/// Devices a benchmark can run on in this build.
enum BenchDevice: String, ExpressibleByArgument, CaseIterable {
    case cpu
    case cuda
}

/// Options every benchmark shares.
struct TimingOptions: ParsableArguments {
    @Option(help: "Timed runs per measurement (the median is reported).")
    var repeats = 10

    @Option(help: "Untimed warm-up runs before timing.")
    var warmup = 2

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard repeats >= 1, warmup >= 0 else { throw ValidationError("--repeats must be ≥ 1 and --warmup ≥ 0") }
    }
}
