import RealModule
import SlopeCore

extension CUDABackend {
    public func adamW(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep) throws {
        try OperandChecks.adamW(parameter: parameter, gradient: gradient, moment1: moment1, moment2: moment2, step: step)
        try OperandChecks.sameDType([parameter, gradient], "adamW")
        guard [DType.float32, .bfloat16].contains(moment1.dtype), moment2.dtype == moment1.dtype else {
            throw TensorError.invalidArgument(
                operation: "adamW on CUDA", reason: "moments must both be float32 or both bfloat16, not \(moment1.dtype) and \(moment2.dtype)")
        }
        let suffix = moment1.dtype == .bfloat16 ? "_bf16_moments" : ""
        let correction1 = 1 - Float.pow(step.beta1, step.step)
        let correction2 = 1 - Float.pow(step.beta2, step.step)
        let hyper: [KernelArgument] = [
            .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon), .float(step.weightDecay),
            .float(correction1), .float(correction2), .float(step.gradientScale),
        ] + Self.roundingArguments(step.rounding)
        if try stepInCompressedCopy(parameter, gradient: gradient, moment1: moment1, moment2: moment2, kernel: "adamw_mapped" + suffix, hyper) {
            return
        }
        try touch(parameter)
        try launch(.optimizer, "adamw" + suffix, dtype: parameter.dtype, grid: elementwiseGrid(parameter.count), [
            .pointer(address(parameter, "adamW")), .pointer(address(gradient, "adamW")), .pointer(address(moment1, "adamW")),
            .pointer(address(moment2, "adamW")), .int64(Int64(parameter.count)),
        ] + hyper)
    }

    /// The kernels' `stochastic, rounding_seed` pair.
    static func roundingArguments(_ rounding: ParameterRounding) -> [KernelArgument] {
        switch rounding {
        case .nearest: [.int32(0), .int32(0)]
        case .stochastic(let seed): [.int32(1), .int32(Int32(bitPattern: seed))]
        }
    }

    /// When W's values are held only in cuSPARSELt's copy (``CUDAStorage/Derivation/compressedCopy``), steps
    /// them there: the copy stays current, so neither reading the values back nor scattering them in again is
    /// needed. Returns false when the parameter is not held that way.
    private func stepInCompressedCopy(
        _ parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, kernel: String, _ hyper: [KernelArgument]
    ) throws -> Bool {
        guard let values = parameter.storage as? CUDAStorage, !values.isResident,
              case .compressedCopy(let copy, let map, let count, _) = values.derivation, count == parameter.count else { return false }
        let (slots, bases, offsets, packing): (CUDAStorage?, CUDAStorage?, CUDAStorage?, SparseOperandCache.Packing.Candidate?) = switch map {
        case .wide(let slots): (slots, nil, nil, nil)
        case .packed(let bases, let offsets, let packing): (nil, bases, offsets, packing)
        }
        try launch(.optimizer, kernel, dtype: parameter.dtype, grid: elementwiseGrid(count), [
            .pointer(copy.address), .optionalPointer(slots?.address), .optionalPointer(bases?.address), .optionalPointer(offsets?.address),
            .int32(Int32(packing?.log2Block ?? 0)), .int64(packing?.offsetMask ?? 0),
            .pointer(address(gradient, "adamW")), .pointer(address(moment1, "adamW")), .pointer(address(moment2, "adamW")), .int64(Int64(count)),
        ] + hyper)
        values.generation &+= 1
        if let operands = values.derived as? SparseOperandCache { operands.steppedInPlace(copy, generation: values.generation) }
        return true
    }
}
