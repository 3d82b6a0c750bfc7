/// RMSNorm over the last dimension with a learned scale (LLaMA's normalisation; no mean, no bias).
public final class RMSNorm: Module {
    public let weight: Parameter
    public let epsilon: Float
    let backend: any Backend
    private var saved: (input: Tensor, output: RMSNormOutput)?

    public init(name: String = "norm", features: Int, epsilon: Float = 1e-5, dtype: DType = .float32, backend: any Backend) throws {
        self.backend = backend
        self.epsilon = epsilon
        weight = Parameter(name: "\(name).weight", value: try backend.tensor([Float](repeating: 1, count: features), shape: [features], dtype: dtype))
    }

    public var parameters: [Parameter] { [weight] }

    public func forward(_ x: Tensor) throws -> Tensor {
        try normalize(x, adding: nil).output
    }

    public func forward(_ x: Tensor, adding residual: Tensor) throws -> (sum: Tensor, output: Tensor) {
        let output = try normalize(x, adding: residual)
        return (try output.sum.orThrow(missingSumIn: "RMSNorm"), output.output)
    }

    private func normalize(_ x: Tensor, adding residual: Tensor?) throws -> RMSNormOutput {
        let output = try backend.rmsNorm(x, adding: residual, weight: weight.value, epsilon: epsilon)
        saved = (output.sum ?? x, output)
        return output
    }

    public func releaseActivations() { saved = nil }

    public func backward(_ dy: Tensor) throws -> Tensor {
        try backward(dy, residualGradient: nil)
    }

    public func backward(_ dy: Tensor, addingGradient residualGradient: Tensor) throws -> Tensor {
        try backward(dy, residualGradient: residualGradient)
    }

    private func backward(_ dy: Tensor, residualGradient: Tensor?) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "RMSNorm.backward", reason: "call forward first")
        }
        let gradients = try backend.rmsNormBackward(
            dy, input: saved.input, weight: weight.value, saved: saved.output, addingGradient: residualGradient)
        try weight.accumulateGradient(gradients.weight, backend)
        return gradients.input
    }
}
