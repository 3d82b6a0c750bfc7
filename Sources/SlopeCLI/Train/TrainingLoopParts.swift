import ArgumentParser
import SLoPe
import SlopeCUDA

/// What the training loops of `slope pretrain` (decoders and encoders) share: the progress line, a step that fails
/// cleanly, and SLOPE_PROFILE's report.
enum ProgressLineOutput {
    /// Shows `line`: redrawn in place on a terminal, printed as a line of its own otherwise.
    static func show(_ line: String) {
        if standardErrorIsTerminal { writeToStandardError("\r\u{1B}[K" + line) } else { say(line) }
    }

    /// Ends the line being redrawn, before anything else is printed.
    static func end() {
        if standardErrorIsTerminal { writeToStandardError("\n") }
    }
}

/// Runs one training step; a step that fails (a non-finite loss, a diverged gradient) saves the state before it with
/// `save` and exits with status 1.
func trainingStep<Result>(_ step: () throws -> Result, save: (String) throws -> Void) throws -> Result {
    do {
        return try step()
    } catch let failure as Trainer.Failure {
        ProgressLineOutput.end()
        printError("error: \(failure)")
        try save("state before the failed step")
        throw ExitCode(1)
    }
}

/// SLOPE_PROFILE's table over the steady-state steps of a run (the first step compiles kernels and searches GEMM
/// plans, so its ops are counted only for the memory high-water mark).
struct StepProfile {
    private let profiler: OpProfiler?
    private let startStep: Int, steps: Int

    init(_ compute: ComputeDevice, from startStep: Int, to steps: Int) {
        profiler = (compute.backend as? CUDABackend)?.cudaDevice.profiler
        self.startStep = startStep
        self.steps = steps
    }

    /// After step `step`: past the run's first step, its memory high-water mark is said and the counts start over.
    func stepDone(_ step: Int) {
        guard let profiler, step == startStep + 1, step < steps else { return }
        if let memory = profiler.memoryHighWater { say("first step: \(memory)") }
        profiler.reset()
    }

    /// The table, when profiling.
    func report() {
        guard let profiler else { return }
        say(profiler.report() + (steps - startStep > 1 ? "\n(steps after the first, and validation)" : ""))
    }
}
