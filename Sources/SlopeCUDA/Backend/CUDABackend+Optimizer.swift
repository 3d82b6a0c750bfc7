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
        try launch(.optimizer, "adamw" + suffix, dtype: parameter.dtype, grid: packedGrid(parameter.count, elementBytes: parameter.dtype.byteSize), [
            .pointer(address(parameter, "adamW")), .pointer(address(gradient, "adamW")), .pointer(address(moment1, "adamW")),
            .pointer(address(moment2, "adamW")), .int64(Int64(parameter.count)),
        ] + hyper)
    }

    /// Plain resident tensors (dense parameters) of one parameter and moment dtype go through `adamw_multi`, up to
    /// 48 per launch; W's values held in cuSPARSELt's copy, and anything else, through the one-tensor path.
    public func adamW(_ tensors: [AdamWTensor], step: AdamWStep) throws {
        let (groups, others) = try optimizerGroups(tensors, step: step)
        for tensor in others {
            try adamW(parameter: tensor.parameter, gradient: tensor.gradient, moment1: tensor.moment1, moment2: tensor.moment2, step: tensor.step(step))
        }
        for group in groups {
            let (dtype, suffix) = (group[0].parameter.dtype, group[0].moment1.dtype == .bfloat16 ? "_bf16_moments" : "")
            let chunk = 256 * (16 / dtype.byteSize) * 4  // four packs per thread
            for batch in MultiTensorLaunch.batches(group, chunk: chunk, perLaunch: Fusion.tensorsPerLaunch(fusions), count: \.parameter.count) {
                try launch(.optimizer, "adamw_multi" + suffix, dtype: dtype, grid: (batch.blocks, 1, 1),
                           [.bytes(try optimizerTable(batch, "adamW"))] + Self.multiTensorHyper(step, chunk: chunk))
            }
        }
    }

    /// LAMB in three launches per batch of tensors (`lamb_moments_multi`, `lamb_norms_multi`, `lamb_apply_multi`):
    /// nothing read back, no copy of the update kept. Tensors the multi-tensor kernels cannot take run composed.
    public func lamb(_ tensors: [AdamWTensor], step: AdamWStep) throws {
        let (groups, others) = try optimizerGroups(tensors, step: step)
        for tensor in others { try composedLAMB(tensor, step: step) }
        let operation = "lamb"
        for group in groups {
            let (dtype, suffix) = (group[0].parameter.dtype, group[0].moment1.dtype == .bfloat16 ? "_bf16_moments" : "")
            let chunk = 256 * 16
            for batch in MultiTensorLaunch.batches(group, chunk: chunk, perLaunch: Fusion.tensorsPerLaunch(fusions), count: \.parameter.count) {
                let table = try optimizerTable(batch, operation), hyper = Self.multiTensorHyper(step, chunk: chunk)
                let partials = try newTensor([2 * batch.blocks], dtype: .float32), sums = try newTensor([2 * batch.items.count], dtype: .float32)
                try launch(.optimizer, "lamb_moments_multi" + suffix, dtype: dtype, grid: (batch.blocks, 1, 1),
                           [.bytes(table)] + hyper + [.pointer(address(partials, operation))])
                try launch(.optimizer, "lamb_norms_multi", dtype: dtype, grid: (batch.items.count, 1, 1), [
                    .bytes(table), .int64(Int64(chunk)), .pointer(address(partials, operation)), .pointer(address(sums, operation)),
                ])
                try launch(.optimizer, "lamb_apply_multi" + suffix, dtype: dtype, grid: (batch.blocks, 1, 1),
                           [.bytes(table)] + hyper + [.pointer(address(sums, operation))])
            }
        }
    }

    /// The multi-tensor optimizer kernels' shared arguments after the table (`ADAMW_MULTI_PARAMS`).
    static func multiTensorHyper(_ step: AdamWStep, chunk: Int) -> [KernelArgument] {
        [
            .int64(Int64(chunk)), .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon),
            .float(1 - Float.pow(step.beta1, step.step)), .float(1 - Float.pow(step.beta2, step.step)), .float(step.gradientScale),
        ]
    }

    /// The tensors the multi-tensor optimizer kernels take, grouped by parameter and moment dtype, and the others
    /// (memory given back or derived, a gradient of another type, moments neither float32 nor bf16): those go tensor
    /// by tensor. Every tensor's operands are checked first.
    private func optimizerGroups(_ tensors: [AdamWTensor], step: AdamWStep) throws -> (groups: [[AdamWTensor]], others: [AdamWTensor]) {
        var groups: [[AdamWTensor]] = [], others: [AdamWTensor] = []
        var groupOf: [String: Int] = [:]
        for tensor in tensors {
            try OperandChecks.adamW(parameter: tensor.parameter, gradient: tensor.gradient, moment1: tensor.moment1, moment2: tensor.moment2, step: step)
            guard let storage = tensor.parameter.storage as? CUDAStorage, storage.isResident, storage.derivation == nil,
                  tensor.gradient.dtype == tensor.parameter.dtype, [DType.float32, .bfloat16].contains(tensor.moment1.dtype),
                  tensor.moment2.dtype == tensor.moment1.dtype else {
                others.append(tensor)
                continue
            }
            let key = "\(tensor.parameter.dtype) \(tensor.moment1.dtype)"
            if let index = groupOf[key] { groups[index].append(tensor) } else {
                groupOf[key] = groups.count
                groups.append([tensor])
            }
        }
        return (groups, others)
    }

    /// A batch's table as the kernels' `AdamWTable` declares it (the parameters are marked written).
    private func optimizerTable(_ batch: MultiTensorLaunch<AdamWTensor>, _ operation: String) throws -> [UInt8] {
        for (tensor, _, _) in batch.items { try touch(tensor.parameter) }
        return try batch.table(entryBytes: 64) { writer, entry in
            let (tensor, firstBlock, count) = entry
            for operand in [tensor.parameter, tensor.gradient, tensor.moment1, tensor.moment2] {
                writer.uint64(try address(operand, operation))
            }
            writer.int64(count)
            writer.int64(firstBlock)
            writer.float(tensor.weightDecay)
            let rounding = Self.rounding(tensor.rounding)
            writer.uint32(rounding.seed)
            writer.int32(rounding.stochastic ? 1 : 0)
            writer.int32(0)
        }
    }

    /// A rounding's kernel form.
    static func rounding(_ rounding: ParameterRounding) -> (stochastic: Bool, seed: UInt32) {
        switch rounding {
        case .nearest: (false, 0)
        case .stochastic(let seed): (true, seed)
        }
    }

    /// The kernels' `stochastic, rounding_seed` pair.
    static func roundingArguments(_ rounding: ParameterRounding) -> [KernelArgument] {
        let (stochastic, seed) = Self.rounding(rounding)
        return [.int32(stochastic ? 1 : 0), .int32(Int32(bitPattern: seed))]
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
