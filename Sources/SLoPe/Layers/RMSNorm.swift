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
        let output = try backend.rmsNorm(x, weight: weight.value, epsilon: epsilon)
        saved = (x, output)
        return output.output
    }

    public func releaseActivations() { saved = nil }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "RMSNorm.backward", reason: "call forward first")
        }
        let gradients = try backend.rmsNormBackward(dy, input: saved.input, weight: weight.value, saved: saved.output)
        try weight.accumulateGradient(gradients.weight, backend)
        return gradients.input
    }
}
