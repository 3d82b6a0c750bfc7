extension Backend {
    public func lamb(_ tensors: [AdamWTensor], step: AdamWStep) throws {
        for tensor in tensors { try composedLAMB(tensor, step: step) }
    }

    /// One tensor's LAMB update in place, composed from ops: AdamW with a learning rate of 1 on a float32 copy gives
    /// `u` as the difference (moments updated as AdamW updates them), then `w −= lr·ratio·u` with the ratio of the two
    /// norms taken where they are (``trustRatioStep(_:update:parameterSquares:updateSquares:rate:)``). For SLoPe
    /// weights the parameter is the compressed values, so the trust ratio is taken over the kept values, as the
    /// method's sparse optimizer does.
    public func composedLAMB(_ tensor: AdamWTensor, step shared: AdamWStep) throws {
        let step = tensor.step(shared), parameter = tensor.parameter
        let before = try cast(parameter, to: parameter.dtype == .float64 ? .float64 : .float32)
        let after = try cast(before, to: before.dtype)
        var unit = step
        unit.learningRate = 1
        unit.rounding = .nearest
        // The copy is float32: so must the gradient be on backends whose AdamW takes one element type (CUDA).
        let gradient = tensor.gradient.dtype == after.dtype ? tensor.gradient : try cast(tensor.gradient, to: after.dtype)
        try adamW(parameter: after, gradient: gradient, moment1: tensor.moment1, moment2: tensor.moment2, step: unit)
        let update = try subtract(before, after)  // m̂/(√v̂ + ε) + λ·w
        if step.weightDecay == 0 {
            try accumulate(update, into: before, alpha: -Double(step.learningRate))
        } else {
            // The ratio is taken on the device: no norm is read back (a synchronisation per tensor on a GPU).
            try trustRatioStep(
                before, update: update, parameterSquares: sumOfSquares(before), updateSquares: sumOfSquares(update), rate: Double(step.learningRate))
        }
        try copy(before, into: parameter)
    }
}
