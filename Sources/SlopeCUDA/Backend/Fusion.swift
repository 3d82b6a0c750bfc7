import SlopeCore

/// A fusion ``CUDABackend`` can turn off (``CUDABackend/fusions``).
public enum Fusion: String, Sendable, CaseIterable {
    /// A block's residual add inside the following norm's kernel, and the residual gradient inside the norm's
    /// backward kernel.
    case residualNorm = "residual-norm"
    /// A linear layer's bias gradient from its weight-gradient GEMM's epilogue (cuBLASLt `BGRADB`).
    case biasGradient = "bias-gradient"
    /// AdamW and the gradient norm over many tensors in one launch per 48 (off: one launch per tensor).
    case multiTensor = "multi-tensor"
    /// The double-pruned transpose built from cuSPARSELt's copy of W straight into its copy of Wᵀ, through the
    /// inverses of their learned maps (off: W's values read back, transposed, scattered into the copy).
    case copyTranspose = "copy-transpose"
    /// ReLU after a dense linear layer in its GEMM's epilogue (cuBLASLt `RELU_BIAS`; off: a separate kernel).
    case activationEpilogue = "activation-epilogue"

    /// Tensors per multi-tensor launch under `fusions`.
    static func tensorsPerLaunch(_ fusions: Set<Fusion>) -> Int {
        fusions.contains(.multiTensor) ? MultiTensorLaunch<Void>.capacity : 1
    }

    /// `on`, `off`, or names separated by commas.
    static func parse(_ text: String) throws -> Set<Fusion> {
        switch text {
        case "on": return Set(allCases)
        case "off", "": return []
        default:
            return Set(try text.split(separator: ",").map { name in
                guard let fusion = Fusion(rawValue: String(name)) else {
                    throw TensorError.invalidArgument(
                        operation: "SLOPE_FUSIONS",
                        reason: "must be on, off or a comma-separated list of \(allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
                }
                return fusion
            })
        }
    }
}
