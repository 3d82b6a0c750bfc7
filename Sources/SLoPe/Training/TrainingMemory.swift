/// The memory a training run needs at least, checked before it starts (decoders and encoders alike): per parameter
/// its value and gradient in the model's dtype and the two optimizer moments, plus one micro-batch's logits.
enum TrainingMemory {
    /// Refuses, naming `what`, a run that could never fit `backend`'s memory (or whose sizes overflow). `logitRows`:
    /// the dimensions whose product is the logits' rows (sizes from the command line, multiplied without overflow).
    static func require(
        parameters: Int?, dtype: DType, options: TrainingOptions, logitRows: [Int], classes: Int, for what: String, on backend: any Backend
    ) throws {
        let perParameter = 2 * dtype.byteSize + 2 * options.momentDType.byteSize
        let state = parameters.flatMap { CheckedSize.product([$0, perParameter]) }
        let logits = CheckedSize.product(logitRows + [classes, dtype.byteSize])
        let total = state.flatMap { s in logits.flatMap { CheckedSize.sum(s, $0) } }
        try MemoryBudget.require(total, for: what, on: backend)
    }
}
