extension BackendComparison {
    /// Every check, for each dtype.
    public func runAll(dtypes: [DType] = [.float32, .bfloat16]) -> [Check] {
        var results: [Check] = []
        for dtype in dtypes {
            do {
                try linearAlgebra(dtype, &results)
                try elementwise(dtype, &results)
                try reductions(dtype, &results)
                try normalization(dtype, &results)
                try lossAndEmbedding(dtype, &results)
                try optimizer(dtype, &results)
                try sparsity(dtype, &results)
                try layers(dtype, &results)
                try transformerOps(dtype, &results)
            } catch {
                results.append(Check(name: "setting up inputs", dtype: dtype, error: .infinity, tolerance: 0, failure: "\(error)"))
            }
        }
        return results
    }

    /// Sparse GEMMs at shapes cuSPARSELt accepts (multiples of 64), with bias, for every pattern it can run,
    /// and a SLoPe layer step at such a shape; `tokens` rows of X (a few for the skinny route). `suffix` labels
    /// the route being checked.
    public func runSparseGEMMChecks(dtype: DType = .bfloat16, tokens: Int = 128, suffix: String) -> [Check] {
        var results: [Check] = []
        do {
            for pattern in [NMPattern.twoFour, try NMPattern(n: 1, m: 4), try NMPattern(n: 2, m: 8)] {
                let w = try random([256, 512], dtype), x = try random([tokens, 512], dtype), bias = try random([256], dtype)
                check("sparseMatmul \(pattern) \(tokens)×512→256 \(suffix)", dtype, &results) { backend, on in
                    let compressed = try backend.compress(self.pick(w, on), pattern: pattern, mask: nil)
                    return [try backend.sparseMatmul(self.pick(x, on), compressed, bias: self.pick(bias, on))]
                }
                check("sparseMatmulActivated relu \(pattern), with and without bias \(suffix)", dtype, &results) { backend, on in
                    let compressed = try backend.compress(self.pick(w, on), pattern: pattern, mask: nil)
                    return [try backend.sparseMatmulActivated(self.pick(x, on), compressed, bias: self.pick(bias, on), .relu),
                            try backend.sparseMatmulActivated(self.pick(x, on), compressed, bias: nil, .relu)]
                }
            }
            let w = try random([256, 512], dtype), x = try random([tokens, 512], dtype), y = try random([tokens, 256], dtype)
            check("sparseMatmul accumulating (beta 1) \(tokens)×512→256 \(suffix)", dtype, &results) { backend, on in
                let compressed = try backend.compress(self.pick(w, on), pattern: .twoFour, mask: nil)
                let target = try backend.cast(self.pick(y, on), to: dtype)
                try backend.sparseMatmul(self.pick(x, on), compressed, accumulatingInto: target)
                return [target]
            }
            let dense = try random([256, 512], dtype, std: 0.05), dy = try random([tokens, 256], dtype)
            check("SparseLinear step \(tokens)×512→256 \(suffix)", dtype, &results) { backend, on in
                let layer = try SparseLinear(converting: Linear(weight: backend.cast(self.pick(dense, on), to: dtype), bias: nil, backend: backend))
                let optimizer = try SparseAdamW(weights: layer.sparseWeights, configuration: .init(learningRate: 1e-2), maskChangeFrequency: 2, backend: backend)
                var outputs: [Tensor] = []
                for _ in 0..<2 {  // the second forward must see the updated weights
                    outputs.append(try layer.forward(self.pick(x, on)))
                    outputs.append(try layer.backward(self.pick(dy, on)))
                    try optimizer.step()
                    try optimizer.zeroGradients()
                }
                return outputs
            }
        } catch {
            results.append(Check(name: "setting up inputs \(suffix)", dtype: dtype, error: .infinity, tolerance: 0, failure: "\(error)"))
        }
        return results + runMergedInferenceCheck(dtype: dtype, tokens: tokens, suffix: suffix)
    }

    /// A SLoPe layer with an adapter, merged for inference, against its unmerged forward, at a shape
    /// cuSPARSELt accepts. `suffix` labels the route or form being checked.
    public func runMergedInferenceCheck(dtype: DType = .bfloat16, tokens: Int = 128, suffix: String) -> [Check] {
        var results: [Check] = []
        do {
            let dense = try random([256, 512], dtype, std: 0.05), x = try random([tokens, 512], dtype)
            let down = try random([512, 8], dtype, std: 0.1), up = try random([8, 256], dtype, std: 0.1), bias = try random([256], dtype)
            check("merged sparse + low-rank \(tokens)×512→256 r=8 \(suffix)", dtype, &results) { backend, on in
                var generator = SeededGenerator(seed: 5)
                let layer = try SparseLinear(converting: Linear(
                    weight: backend.cast(self.pick(dense, on), to: dtype), bias: backend.cast(self.pick(bias, on), to: dtype), backend: backend))
                let adapter = try layer.attachAdapter(rank: 8, generator: &generator)
                try backend.copy(self.pick(down, on), into: adapter.down.value)
                try backend.copy(self.pick(up, on), into: adapter.up.value)
                try adapter.pruneDown(pattern: .twoFour)
                return [try layer.merged().forward(self.pick(x, on)), try layer.forward(self.pick(x, on))]
            }
        } catch {
            results.append(Check(name: "setting up merged inference inputs \(suffix)", dtype: dtype, error: .infinity, tolerance: 0, failure: "\(error)"))
        }
        return results
    }

    func pick(_ pair: (Tensor, Tensor), _ onCandidate: Bool) -> Tensor { onCandidate ? pair.0 : pair.1 }

    private func linearAlgebra(_ dtype: DType, _ results: inout [Check]) throws {
        for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
            let (m, n, k) = (96, 80, 136)
            let a = try random(transA ? [k, m] : [m, k], dtype), b = try random(transB ? [n, k] : [k, n], dtype)
            let c = try random([m, n], dtype), bias = try random([n], dtype)
            let name = "gemm \(transA ? "T" : "N")\(transB ? "T" : "N") α β bias"
            check(name, dtype, &results) { backend, on in
                let out = try backend.cast(self.pick(c, on), to: dtype)
                return [try backend.gemm(self.pick(a, on), self.pick(b, on), transposeA: transA, transposeB: transB, alpha: 0.5, beta: 0.25, into: out, bias: self.pick(bias, on))]
            }
        }
        // A linear layer's weight and bias gradients (on the GPU the bias sum comes from the GEMM's epilogue),
        // added to existing gradients, and into a new weight gradient.
        let dy = try random([136, 96], dtype), input = try random([136, 80], dtype)
        let weightGradient = try random([96, 80], dtype), biasGradient = try random([96], dtype)
        check("linearWeightGradient with bias gradient", dtype, &results) { backend, on in
            let (dw, db) = (try backend.cast(self.pick(weightGradient, on), to: dtype), try backend.cast(self.pick(biasGradient, on), to: dtype))
            _ = try backend.linearWeightGradient(outputGradient: self.pick(dy, on), input: self.pick(input, on), into: dw, biasGradient: db)
            let fresh = try backend.linearWeightGradient(outputGradient: self.pick(dy, on), input: self.pick(input, on), into: nil, biasGradient: db)
            return [dw, db, fresh]
        }
        let x = try random([70, 45], dtype), y = try random([3, 45], dtype)
        check("transpose", dtype, &results) { backend, on in [try backend.transpose(self.pick(x, on))] }
        check("concatenateRows", dtype, &results) { backend, on in [try backend.concatenateRows([self.pick(x, on), self.pick(y, on)])] }
        check("splitColumns (four parts, one empty)", dtype, &results) { backend, on in try backend.splitColumns(self.pick(x, on), widths: [20, 0, 15, 10]) }
        let targets = try random([90, 15], dtype), targetRows = try pair((0..<70).map { Int32(($0 * 37) % 90) }, [70])
        check("splitColumns scattering parts into rows (a decode step's cache write)", dtype, &results) { backend, on in
            let (keys, values) = (try backend.cast(self.pick(targets, on), to: dtype), try backend.cast(self.pick(targets, on), to: dtype))
            let parts = try backend.splitColumns(
                self.pick(x, on), widths: [15, 15, 15], scatteringInto: [nil, keys, values], rows: self.pick(targetRows, on))
            return [parts[0]!, keys, values]
        }
        check("cast to float32 and back", dtype, &results) { backend, on in
            [try backend.cast(backend.cast(self.pick(x, on), to: .float32), to: dtype)]
        }
    }

    private func elementwise(_ dtype: DType, _ results: inout [Check]) throws {
        let a = try random([33, 65], dtype), b = try random([33, 65], dtype)
        let maskValues = (0..<(33 * 65)).map { UInt8(($0 * 7) % 3 == 0 ? 1 : 0) }
        let masks = (try candidate.tensor(maskValues, shape: [33, 65]), try reference.tensor(maskValues, shape: [33, 65]))
        check("add, subtract, multiply", dtype, &results) { backend, on in
            let (x, y) = (self.pick(a, on), self.pick(b, on))
            return [try backend.add(x, y), try backend.subtract(x, y), try backend.multiply(x, y)]
        }
        check("scale, accumulate, fill", dtype, &results) { backend, on in
            let target = try backend.scale(self.pick(a, on), by: 1.5)
            try backend.accumulate(self.pick(b, on), into: target, alpha: -0.75)
            let filled = try backend.cast(self.pick(a, on), to: dtype)
            try backend.fill(filled, with: 0.375)
            return [target, filled]
        }
        check("applyMask", dtype, &results) { backend, on in [try backend.applyMask(self.pick(a, on), mask: self.pick(masks, on))] }
        check("trustRatioStep (LAMB's update, the ratio on the device)", dtype, &results) { backend, on in
            let x = try backend.cast(self.pick(a, on), to: .float32), update = try backend.cast(self.pick(b, on), to: .float32)
            let zero = try backend.zeros([33, 65], dtype: .float32)
            try backend.trustRatioStep(x, update: update, parameterSquares: backend.sumOfSquares(x), updateSquares: backend.sumOfSquares(update), rate: 0.01)
            let unscaled = try backend.cast(self.pick(a, on), to: .float32)  // a zero update's norm: ratio 1
            try backend.trustRatioStep(unscaled, update: update, parameterSquares: backend.sumOfSquares(unscaled), updateSquares: backend.sumOfSquares(zero), rate: 0.01)
            return [x, unscaled]
        }
        check("dropout (the same elements as the CPU's)", dtype, &results) { backend, on in
            [try backend.dropout(self.pick(a, on), probability: 0.3, seed: 0xD80F_0001), try backend.dropout(self.pick(b, on), probability: 0.1, seed: 77)]
        }
        for kind in Activation.allCases {
            check("\(kind) forward + backward", dtype, &results) { backend, on in
                let (x, dy) = (self.pick(a, on), self.pick(b, on))
                return [try backend.activation(x, kind), try backend.activationBackward(x, gradient: dy, kind)]
            }
        }
    }

    private func reductions(_ dtype: DType, _ results: inout [Check]) throws {
        let big = try random([300_007], dtype)
        let matrix = try random([129, 257], dtype)
        check("sum, sumOfSquares, maxAbsolute", dtype, &results, tolerance: 1e-5) { backend, on in
            let x = self.pick(big, on)
            return [try backend.sumOfSquares(x), try backend.maxAbsolute(x), try backend.sum(x)]
        }
        check("sumRows", dtype, &results) { backend, on in [try backend.sumRows(self.pick(matrix, on))] }
        // Rows of whole 16-byte packs take CUDA's two-pass column-sum kernels (257 columns above take cuBLASLt).
        let packed = try random([300, 264], dtype), start = try random([264], dtype)
        check("sumRows, accumulateColumnSums (packed rows)", dtype, &results) { backend, on in
            let target = try backend.cast(self.pick(start, on), to: dtype)
            try backend.accumulateColumnSums(self.pick(packed, on), into: target)
            return [try backend.sumRows(self.pick(packed, on)), target]
        }
        check("totalSumOfSquares", dtype, &results, tolerance: 1e-5) { backend, on in
            let total = try backend.totalSumOfSquares([self.pick(big, on), self.pick(matrix, on), self.pick(packed, on)])
            return [try backend.tensor([Float(total)], shape: [1], dtype: .float32)]
        }
    }

    private func normalization(_ dtype: DType, _ results: inout [Check]) throws {
        let x = try random([37, 300], dtype, std: 2), dy = try random([37, 300], dtype)
        let weight = try random([300], dtype), bias = try random([300], dtype)
        check("softmax forward + backward", dtype, &results) { backend, on in
            let y = try backend.softmax(self.pick(x, on))
            return [y, try backend.softmaxBackward(output: y, gradient: self.pick(dy, on))]
        }
        check("layerNorm forward + backward", dtype, &results) { backend, on in
            let saved = try backend.layerNorm(self.pick(x, on), weight: self.pick(weight, on), bias: self.pick(bias, on), epsilon: 1e-5)
            let gradients = try backend.layerNormBackward(self.pick(dy, on), input: self.pick(x, on), weight: self.pick(weight, on), saved: saved)
            return [saved.output, saved.mean, saved.reciprocalStd, gradients.input, gradients.weight, gradients.bias]
        }
        // The residual stream's add and gradient taken into the norm's passes (fused on the GPU).
        let residual = try random([37, 300], dtype), residualGradient = try random([37, 300], dtype)
        check("layerNorm with residual add + gradient", dtype, &results) { backend, on in
            let saved = try backend.layerNorm(
                self.pick(x, on), adding: self.pick(residual, on), weight: self.pick(weight, on), bias: self.pick(bias, on), epsilon: 1e-5)
            guard let sum = saved.sum else { throw TensorError.invalidArgument(operation: "layerNorm", reason: "no sum returned") }
            let gradients = try backend.layerNormBackward(
                self.pick(dy, on), input: sum, weight: self.pick(weight, on), saved: saved, addingGradient: self.pick(residualGradient, on))
            return [sum, saved.output, saved.mean, saved.reciprocalStd, gradients.input, gradients.weight, gradients.bias]
        }
        // A post-norm block's branch dropped inside the norm's passes (the same elements as the dropout op's).
        let dropout = SeededDropout(probability: 0.1, seed: 0xD80F_0002)
        check("layerNorm adding a dropped residual + gradient (dropped too)", dtype, &results) { backend, on in
            let saved = try backend.layerNorm(
                self.pick(x, on), adding: self.pick(residual, on), droppingResidual: dropout, weight: self.pick(weight, on),
                bias: self.pick(bias, on), epsilon: 1e-5)
            guard let sum = saved.sum else { throw TensorError.invalidArgument(operation: "layerNorm", reason: "no sum returned") }
            let gradients = try backend.layerNormBackward(
                self.pick(dy, on), input: sum, weight: self.pick(weight, on), saved: saved, addingGradient: nil, droppingInputGradient: dropout)
            guard let dropped = gradients.droppedInput else {
                throw TensorError.invalidArgument(operation: "layerNormBackward", reason: "no dropped gradient returned")
            }
            return [sum, saved.output, gradients.input, dropped]
        }
    }

    private func lossAndEmbedding(_ dtype: DType, _ results: inout [Check]) throws {
        let table = try random([50, 64], dtype), dy = try random([40, 64], dtype)
        let ids = try pair((0..<40).map { Int32(($0 * 13) % 17 * 3) }, [40])  // 17 distinct ids, most repeated
        check("embedding forward + backward", dtype, &results) { backend, on in
            let gradient = try backend.zeros([50, 64], dtype: dtype)
            try backend.embeddingBackward(self.pick(dy, on), ids: self.pick(ids, on), into: gradient)
            return [try backend.embedding(self.pick(table, on), ids: self.pick(ids, on)), gradient]
        }
        let logits = try random([40, 301], dtype, std: 3)
        let targets = try pair((0..<40).map { $0 % 7 == 0 ? -100 : Int32(($0 * 31) % 301) }, [40])
        check("crossEntropy forward + backward", dtype, &results) { backend, on in
            let saved = try backend.crossEntropy(logits: self.pick(logits, on), targets: self.pick(targets, on), ignoreIndex: -100)
            return [saved.loss, saved.probabilities, try backend.crossEntropyBackward(saved, targets: self.pick(targets, on), ignoreIndex: -100, scale: 0.5)]
        }
        check("argmaxRows (greedy decoding)", dtype, &results) { backend, on in
            let columns = try backend.int32s(backend.argmaxRows(self.pick(logits, on)))
            return [try backend.tensor(columns.map(Float.init), shape: [columns.count], dtype: .float32)]
        }
        check("sampleRows (sampled decoding)", dtype, &results) { backend, on in
            let temperatures = (0..<40).map { Float($0 % 4) * 0.5 }, uniforms = (0..<40).map { Float(($0 * 37) % 100) / 100 }
            let columns = try backend.int32s(backend.sampleRows(self.pick(logits, on), temperatures: temperatures, uniforms: uniforms))
            return [try backend.tensor(columns.map(Float.init), shape: [columns.count], dtype: .float32)]
        }
        check("truncatedLogits + sampleRows (top-k / top-p decoding)", dtype, &results) { backend, on in
            let temperatures = (0..<40).map { Float($0 % 4) * 0.5 }, uniforms = (0..<40).map { Float(($0 * 37) % 100) / 100 }
            let truncated = try backend.truncatedLogits(
                self.pick(logits, on), temperatures: temperatures, topK: (0..<40).map { $0 % 5 * 3 }, topP: (0..<40).map { [1, 0.9, 0.5, 0.2][$0 % 4] })
            let kept = try backend.floats(truncated).map { $0 > -.infinity ? Float(1) : 0 }
            let columns = try backend.int32s(backend.sampleRows(truncated, temperatures: temperatures, uniforms: uniforms))
            return [try backend.tensor(kept, shape: [kept.count], dtype: .float32),
                    try backend.tensor(columns.map(Float.init), shape: [columns.count], dtype: .float32)]
        }
        check("crossEntropy backward over the probabilities", dtype, &results) { backend, on in
            let saved = try backend.crossEntropy(logits: self.pick(logits, on), targets: self.pick(targets, on), ignoreIndex: -100)
            return [try backend.crossEntropyBackwardConsuming(saved, targets: self.pick(targets, on), ignoreIndex: -100, scale: 0.5)]
        }
    }

    private func optimizer(_ dtype: DType, _ results: inout [Check]) throws {
        let parameter = try random([4099], dtype), gradient = try random([4099], dtype)
        let m = try random([4099], .float32, std: 0.1), v = try random([4099], .float32, std: 0.1)
        check("adamW (3 steps)", dtype, &results) { backend, on in
            let p = try backend.cast(self.pick(parameter, on), to: dtype)
            let first = try backend.cast(self.pick(m, on), to: .float32)
            let second = try backend.multiply(self.pick(v, on), self.pick(v, on))
            for step in 1...3 {
                try backend.adamW(parameter: p, gradient: self.pick(gradient, on), moment1: first, moment2: second,
                                  step: AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: step, gradientScale: 0.5))
            }
            return [p, first, second]
        }
        check("adamW, bf16 moments (3 steps)", dtype, &results, tolerance: Self.tolerance(for: .bfloat16)) { backend, on in
            let p = try backend.cast(self.pick(parameter, on), to: dtype)
            let first = try backend.cast(self.pick(m, on), to: .bfloat16)
            let second = try backend.cast(backend.multiply(self.pick(v, on), self.pick(v, on)), to: .bfloat16)
            for step in 1...3 {
                try backend.adamW(parameter: p, gradient: self.pick(gradient, on), moment1: first, moment2: second,
                                  step: AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: step, gradientScale: 0.5))
            }
            return [p, first, second]
        }
        // Many tensors in one call (the GPU's multi-tensor launch): 60 of them, more than one launch holds, of
        // several sizes, each with its own weight decay and rounding.
        let sizes = (0..<60).map { [1, 7, 64, 300, 4099][$0 % 5] }
        let parameters = try sizes.map { try random([$0], dtype) }, gradients = try sizes.map { try random([$0], dtype) }
        // AdamW and LAMB (on the GPU: multi-tensor launches; LAMB's on the CPU composed from ops), each tensor with
        // its own weight decay, AdamW's with its own rounding.
        for rule in UpdateRule.allCases {
            check("\(rule == .adamw ? "adamW" : "lamb"), 60 tensors in one call (3 steps)", dtype, &results) { backend, on in
                let values = try parameters.map { try backend.cast(self.pick($0, on), to: dtype) }
                let moments = try sizes.map { (try backend.zeros([$0], dtype: .float32), try backend.zeros([$0], dtype: .float32)) }
                for step in 1...3 {
                    let tensors = values.indices.map { index in
                        AdamWTensor(
                            parameter: values[index], gradient: self.pick(gradients[index], on), moment1: moments[index].0,
                            moment2: moments[index].1, weightDecay: index % 2 == 0 ? 0.1 : 0,
                            rounding: dtype == .bfloat16 && rule == .adamw
                                ? .stochastic(seed: StochasticRounding.seed(run: 2, step: step, tensor: index)) : .nearest)
                    }
                    let hyper = AdamWStep(learningRate: 1e-2, step: step, gradientScale: 0.5)
                    switch rule {
                    case .adamw: try backend.adamW(tensors, step: hyper)
                    case .lamb: try backend.lamb(tensors, step: hyper)
                    }
                }
                return values + moments.flatMap { [$0.0, $0.1] }
            }
        }
        guard dtype == .bfloat16 else { return }  // other dtypes always round to nearest
        check("adamW, stochastic rounding (3 steps)", dtype, &results) { backend, on in
            let p = try backend.cast(self.pick(parameter, on), to: dtype)
            let first = try backend.cast(self.pick(m, on), to: .float32)
            let second = try backend.multiply(self.pick(v, on), self.pick(v, on))
            for step in 1...3 {
                try backend.adamW(parameter: p, gradient: self.pick(gradient, on), moment1: first, moment2: second,
                                  step: AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: step, gradientScale: 0.5,
                                                  rounding: .stochastic(seed: StochasticRounding.seed(run: 1, step: step, tensor: 0))))
            }
            return [p, first, second]
        }
    }

    private func sparsity(_ dtype: DType, _ results: inout [Check]) throws {
        for pattern in [NMPattern.twoFour, try NMPattern(n: 1, m: 4), try NMPattern(n: 2, m: 8)] {
            // 72 × 96: a whole and a part 64 × 64 tile each way for the tiled transpose refresh.
            let w = try random([72, 96], dtype), g = try random([72, 96], dtype), x = try random([50, 96], dtype), bias = try random([72], dtype)
            check("prune row/column, compress, decompress \(pattern)", dtype, &results) { backend, on in
                let rowMask = try backend.pruneMask(self.pick(w, on), pattern: pattern, direction: .rowWise, within: nil)
                let columnMask = try backend.pruneMask(self.pick(w, on), pattern: pattern, direction: .columnWise, within: rowMask)
                let compressed = try backend.compress(self.pick(w, on), pattern: pattern, mask: rowMask)
                let gathered = try backend.gatherCompressed(self.pick(g, on), layout: compressed)
                let accumulated = try backend.cast(compressed.values, to: dtype)
                try backend.accumulateGathered(self.pick(g, on), layout: compressed, into: accumulated)
                return [rowMask, columnMask, compressed.values, compressed.indices, try backend.decompress(compressed),
                        try backend.mask(of: compressed), gathered, accumulated]
            }
            check("sparseMatmul \(pattern)", dtype, &results) { backend, on in
                let compressed = try backend.compress(self.pick(w, on), pattern: pattern, mask: nil)
                return [try backend.sparseMatmul(self.pick(x, on), compressed, bias: self.pick(bias, on))]
            }
            check("double-pruned transpose + refresh \(pattern)", dtype, &results) { backend, on in
                let compressed = try backend.compress(self.pick(w, on), pattern: pattern, mask: nil)
                let transposed = try backend.doublePrunedTranspose(of: compressed)
                let before = try backend.cast(transposed.values, to: dtype)
                try backend.scaleInPlace(compressed.values, by: -2)
                try backend.refreshDoublePrunedTranspose(transposed, from: compressed)
                return [before, transposed.values, transposed.indices]
            }
        }
        // 80 × 112 at 2:4: every row a multiple of 8 slots both ways (the refresh's 8-slot path), with part tiles.
        let w = try random([80, 112], dtype)
        check("double-pruned transpose + refresh 2:4 80×112", dtype, &results) { backend, on in
            let compressed = try backend.compress(self.pick(w, on), pattern: .twoFour, mask: nil)
            let transposed = try backend.doublePrunedTranspose(of: compressed)
            try backend.scaleInPlace(compressed.values, by: -2)
            try backend.refreshDoublePrunedTranspose(transposed, from: compressed)
            return [transposed.values, transposed.indices]
        }
    }

    private func layers(_ dtype: DType, _ results: inout [Check]) throws {
        let dense = try random([64, 128], dtype, std: 0.1), x = try random([24, 128], dtype), dy = try random([24, 64], dtype)
        let down = try random([128, 4], dtype, std: 0.1), up = try random([4, 64], dtype, std: 0.1)
        check("SparseLinear forward/backward + SparseAdamW step", dtype, &results) { backend, on in
            let layer = try SparseLinear(converting: Linear(weight: backend.cast(self.pick(dense, on), to: dtype), bias: nil, backend: backend))
            let y = try layer.forward(self.pick(x, on))
            let dx = try layer.backward(self.pick(dy, on))
            let optimizer = try SparseAdamW(weights: layer.sparseWeights, configuration: .init(learningRate: 1e-2), maskChangeFrequency: 1, backend: backend)
            try optimizer.step()
            return [y, dx, layer.weight.gradient!, layer.weight.values, try layer.weight.doublePrunedDense()]
        }
        check("merged sparse + low-rank inference", dtype, &results) { backend, on in
            var generator = SeededGenerator(seed: 3)
            let layer = try SparseLinear(converting: Linear(weight: backend.cast(self.pick(dense, on), to: dtype), bias: nil, backend: backend))
            let adapter = try layer.attachAdapter(rank: 4, generator: &generator)
            try backend.copy(self.pick(down, on), into: adapter.down.value)
            try backend.copy(self.pick(up, on), into: adapter.up.value)
            try adapter.pruneDown(pattern: .twoFour)
            return [try layer.merged().forward(self.pick(x, on)), try layer.forward(self.pick(x, on))]
        }
        // Generation's stacked q/k/v: dense projections with biases, and merged SLoPe layers with adapters of ranks 4 and 8.
        check("stacked projections, dense and merged SLoPe (one GEMM, split)", dtype, &results) { backend, on in
            var generator = SeededGenerator(seed: 4)
            let weight = try backend.cast(self.pick(dense, on), to: dtype)
            let linears = try (0..<3).map { _ in
                try Linear(inFeatures: 128, outFeatures: 64, dtype: dtype, backend: backend, generator: &generator)
            }
            let merged = try [4, 8].map { rank in
                let layer = try SparseLinear(converting: Linear(weight: weight, bias: nil, backend: backend))
                let adapter = try layer.attachAdapter(rank: rank, generator: &generator)
                try backend.fill(adapter.up.value, with: 0.05)
                try adapter.pruneDown(pattern: .twoFour)
                return try layer.merged()
            }
            guard let stackedLinears = try StackedProjection(stacking: linears, backend: backend),
                  let stackedMerged = try StackedProjection(stacking: merged, backend: backend) else {
                throw TensorError.invalidArgument(operation: "StackedProjection", reason: "the projections did not stack")
            }
            let input = self.pick(x, on)
            return try stackedLinears.forward(input) + stackedMerged.forward(input)
        }
    }
}
