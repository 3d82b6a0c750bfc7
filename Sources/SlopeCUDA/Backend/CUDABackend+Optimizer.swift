import RealModule
import SlopeCore

extension CUDABackend {
    public func adamW(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep) throws {
        try OperandChecks.adamW(parameter: parameter, gradient: gradient, moment1: moment1, moment2: moment2, step: step)
        try OperandChecks.sameDType([parameter, gradient], "adamW")
        try OperandChecks.dtype(moment1, .float32, "adamW moments")
        try OperandChecks.dtype(moment2, .float32, "adamW moments")
        try touch(parameter)
        let correction1 = 1 - Float.pow(step.beta1, step.step)
        let correction2 = 1 - Float.pow(step.beta2, step.step)
        try launch(.optimizer, "adamw", dtype: parameter.dtype, grid: elementwiseGrid(parameter.count), [
            .pointer(address(parameter, "adamW")), .pointer(address(gradient, "adamW")), .pointer(address(moment1, "adamW")),
            .pointer(address(moment2, "adamW")), .int64(Int64(parameter.count)), .float(step.learningRate), .float(step.beta1),
            .float(step.beta2), .float(step.epsilon), .float(step.weightDecay), .float(correction1), .float(correction2),
            .float(step.gradientScale),
        ])
    }
}
