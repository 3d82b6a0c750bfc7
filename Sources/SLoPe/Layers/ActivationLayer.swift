/// A pointwise nonlinearity (GELU, ReLU, SiLU) that remembers its input for backward.
public final class ActivationLayer: Layer {
    public let kind: Activation
    let backend: any Backend
    private var savedInput: Tensor?

    public init(_ kind: Activation, backend: any Backend) {
        self.kind = kind
        self.backend = backend
    }

    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor) throws -> Tensor {
        savedInput = x
        return try backend.activation(x, kind)
    }

    public func releaseActivations() { savedInput = nil }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = savedInput else {
            throw TensorError.invalidArgument(operation: "ActivationLayer.backward", reason: "call forward first")
        }
        return try backend.activationBackward(x, gradient: dy, kind)
    }
}
