/// Every numeric operation a layer, loss or optimizer needs.
///
/// Layers call only these methods, so the CPU backend (the numerical reference) and the CUDA backend
/// are interchangeable. Conventions, shared by all backends:
/// - Tensors are contiguous and row-major; "rows" are all leading dimensions, "columns" the last one.
/// - Float ops accept float32, float64, float16 and bfloat16 and return the input's dtype; operands of
///   one call share a dtype. Token ids and targets are `int32`; masks are `uint8` with **1 = kept**.
/// - Shape and dtype errors are thrown as ``TensorError`` before anything is computed.
public protocol Backend: AnyObject, Sendable {
    var device: Device { get }
    /// Human-readable description (e.g. "cpu (2 threads, AVX-512)").
    var name: String { get }
    /// Bytes currently held by this backend's tensors, and the peak.
    var memoryStatistics: MemoryStatistics { get }
    /// Bytes the device has in all (the GPU's memory; the host's physical memory); nil where unknown.
    /// ``MemoryBudget`` refuses work that could never fit it.
    var memoryCapacity: Int? { get }

    // MARK: Memory

    /// A zero-filled tensor.
    func zeros(_ shape: [Int], dtype: DType) throws -> Tensor
    /// Uploads `values` (converted to `dtype` with round-to-nearest-even).
    func tensor(_ values: [Float], shape: [Int], dtype: DType) throws -> Tensor
    func tensor(_ values: [Double], shape: [Int], dtype: DType) throws -> Tensor
    func tensor(_ values: [Int32], shape: [Int]) throws -> Tensor
    func tensor(_ values: [UInt8], shape: [Int]) throws -> Tensor
    /// Downloads a tensor's elements as Float / Double / Int32 / UInt8.
    func floats(_ tensor: Tensor) throws -> [Float]
    func doubles(_ tensor: Tensor) throws -> [Double]
    func int32s(_ tensor: Tensor) throws -> [Int32]
    func uint8s(_ tensor: Tensor) throws -> [UInt8]
    /// A new tensor with the same elements converted to `dtype` (a plain copy when equal).
    func cast(_ tensor: Tensor, to dtype: DType) throws -> Tensor
    /// Copies `source` into `destination` (same element count; dtypes may differ).
    func copy(_ source: Tensor, into destination: Tensor) throws
    /// Sets every element to `value`.
    func fill(_ tensor: Tensor, with value: Double) throws

    // MARK: Dense linear algebra

    /// `C = alpha·op(A)·op(B) + beta·C (+ bias per column)` for 2-D `A`, `B` (leading dims of A are rows).
    /// With `c == nil` a new tensor is returned and `beta` is ignored; otherwise `c` is updated in place and returned.
    func gemm(
        _ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool,
        alpha: Float, beta: Float, into c: Tensor?, bias: Tensor?
    ) throws -> Tensor
    /// A linear layer's parameter gradients from `dy [T, out]` and `x [T, in]`: returns `dW = dyᵀ·x` (added into
    /// `weightGradient` when given, else a new tensor) and adds `Σ_t dy[t, :]` into `biasGradient` when given. A
    /// backend may compute the bias sum in the GEMM's epilogue; the default is ``unfusedLinearWeightGradient(outputGradient:input:into:biasGradient:)``.
    func linearWeightGradient(outputGradient dy: Tensor, input x: Tensor, into weightGradient: Tensor?, biasGradient: Tensor?) throws -> Tensor
    /// The transpose of a matrix `[rows, columns]` → `[columns, rows]`.
    func transpose(_ x: Tensor) throws -> Tensor
    /// Stacks matrices with equal column counts and dtypes: `[r₁, c]`, `[r₂, c]`, … → `[r₁ + r₂ + …, c]`.
    func concatenateRows(_ tensors: [Tensor]) throws -> Tensor
    /// The column blocks of a matrix `[rows, Σ widths]` as new matrices `[rows, widths[i]]`, left to right: a stacked
    /// projection's output (inference's q, k and v from one GEMM) taken apart.
    func splitColumns(_ x: Tensor, widths: [Int]) throws -> [Tensor]
    /// Copies rows `rows` of `source` into `destination` from row `row` on, in place (both seen as `[shape[0],
    /// rest]`, equal row widths and dtypes): how a preallocated KV cache is written and read.
    func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, at row: Int) throws
    /// Row `from[r]` of `source` into row `to[r]` of `destination` for every r, in place (nil: the identity), rows as in
    /// `copyRows`: a decode step's keys into each sequence's cache rows, or scattered rows gathered, in one call.
    func moveRows(_ source: Tensor, from: [Int]?, into destination: Tensor, to: [Int]?) throws

    // MARK: Elementwise

    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor
    func subtract(_ a: Tensor, _ b: Tensor) throws -> Tensor
    func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor
    func scale(_ x: Tensor, by factor: Double) throws -> Tensor
    /// `y += alpha · x` in place (gradient accumulation).
    func accumulate(_ x: Tensor, into y: Tensor, alpha: Double) throws
    /// LAMB's step in place: `x −= rate · r · update`, r = √(parameterSquares / updateSquares) — both one-element
    /// ``sumOfSquares(_:)`` results, read where they are (no read-back) — and r = 1 when either is zero.
    func trustRatioStep(_ x: Tensor, update: Tensor, parameterSquares: Tensor, updateSquares: Tensor, rate: Double) throws
    /// `x *= factor` in place.
    func scaleInPlace(_ x: Tensor, by factor: Double) throws
    /// `x ⊙ mask` (mask `uint8`, 1 = kept).
    func applyMask(_ x: Tensor, mask: Tensor) throws -> Tensor
    /// Inverted dropout: each element kept with probability `1 − probability` and scaled by `1/(1 − probability)`,
    /// zero otherwise; which ones is ``DropoutMask`` of `seed` and the element's index, the same on every backend, so
    /// the backward pass is this op on the gradient with the same seed.
    func dropout(_ x: Tensor, probability: Double, seed: UInt64) throws -> Tensor
    func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor
    /// `dx = dy · f'(x)`.
    func activationBackward(_ x: Tensor, gradient dy: Tensor, _ kind: Activation) throws -> Tensor
    /// `f(x·wᵀ + bias)` for `x [..., in]`, `w [out, in]`: a linear layer and the activation after it. A backend may
    /// apply `f` in the GEMM's epilogue; the default composes ``gemm(_:_:transposeA:transposeB:alpha:beta:into:bias:)``
    /// and ``activation(_:_:)``.
    func linearActivated(_ x: Tensor, weight: Tensor, bias: Tensor?, _ kind: Activation) throws -> Tensor
    /// `f(gate) ⊙ up`: SwiGLU's hidden activation (f = SiLU). A backend may fuse it; the default composes
    /// ``activation(_:_:)`` and ``multiply(_:_:)``.
    func gatedActivation(gate: Tensor, up: Tensor, _ kind: Activation) throws -> Tensor
    /// The gradients of `h = f(gate) ⊙ up` given `dh`: `(gate: f'(gate) ⊙ up ⊙ dh, up: f(gate) ⊙ dh)`.
    func gatedActivationBackward(gate: Tensor, up: Tensor, gradient dh: Tensor, _ kind: Activation) throws -> GatedActivationGradients

    // MARK: Reductions (whole-tensor results are 1-element float32 tensors, float64 for float64 input)

    func sum(_ x: Tensor) throws -> Tensor
    func sumOfSquares(_ x: Tensor) throws -> Tensor
    func maxAbsolute(_ x: Tensor) throws -> Tensor
    /// Column sums of `[rows, columns]` → `[columns]` (a bias gradient).
    func sumRows(_ x: Tensor) throws -> Tensor
    /// `target[c] += Σ_r x[r, c]` for `x` `[rows, columns]`: a bias gradient accumulated in place.
    func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws
    /// Σ x² over every element of every tensor, in order, read back once (a global gradient norm without a
    /// device round trip per tensor).
    func totalSumOfSquares(_ tensors: [Tensor]) throws -> Double

    // MARK: Normalisation and softmax

    /// Softmax over the last dimension.
    func softmax(_ x: Tensor) throws -> Tensor
    /// `dx` from the softmax output `y` and `dy`.
    func softmaxBackward(output y: Tensor, gradient dy: Tensor) throws -> Tensor
    /// LayerNorm over the last dimension: returns `y`, and the per-row `mean` and `rstd` (float32) backward needs.
    /// With `residual`, the norm is of `x + residual` (a residual stream's add taken into the same pass), and that
    /// sum is returned as `sum`: it is backward's input. With `dropout` too, the residual is dropped first, exactly as
    /// ``dropout(_:probability:seed:)`` would (a post-norm block's branch, in the norm's pass).
    func layerNorm(
        _ x: Tensor, adding residual: Tensor?, droppingResidual dropout: SeededDropout?, weight: Tensor, bias: Tensor, epsilon: Float
    ) throws -> LayerNormOutput
    /// With `residualGradient`, the input gradient returned is the norm's plus `residualGradient` (the gradient
    /// that reaches the same tensor past the norm, through a residual connection), in one pass. With `dropout`, the
    /// input gradient dropped as ``dropout(_:probability:seed:)`` would drop it comes back too (`droppedInput`: the
    /// gradient of a residual that the forward pass dropped).
    func layerNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput, addingGradient residualGradient: Tensor?,
        droppingInputGradient dropout: SeededDropout?
    ) throws -> LayerNormGradients

    /// RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + ε) · weight`; also returns the per-row
    /// reciprocal RMS (float32) backward needs. `residual` and `residualGradient` as for LayerNorm.
    func rmsNorm(_ x: Tensor, adding residual: Tensor?, weight: Tensor, epsilon: Float) throws -> RMSNormOutput
    func rmsNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput, addingGradient residualGradient: Tensor?
    ) throws -> RMSNormGradients

    // MARK: Attention

    /// Rotary position embedding (the "rotate half" form of LLaMA): in each head, element `i` and `i + D/2`
    /// rotate by `position · base^(−2i/D)`. `x [batch·seq, heads·D]`; `inverse` rotates back (the backward pass).
    func rotaryEmbedding(_ x: Tensor, layout: RotaryLayout, inverse: Bool) throws -> Tensor
    /// Scaled dot-product attention, computed flash-style (no `[T, T]` matrix is kept): `query [B·Tq, Hq·D]`,
    /// `key`/`value [B·Tk, Hkv·D]` (Hq a multiple of Hkv: grouped-query attention) → `[B·Tq, Hq·D]`,
    /// plus the per-row log-sum-exp of the scores that backward uses to recompute the probabilities.
    func attention(query: Tensor, key: Tensor, value: Tensor, shape: AttentionShape) throws -> AttentionOutput
    /// Whether ``attention(query:key:value:shape:)`` and its backward take this shape with packed rows
    /// (``AttentionShape/packedRows``) in `dtype`; where not, the caller pads the rows around the call.
    func takesPackedAttention(_ shape: AttentionShape, dtype: DType) -> Bool
    /// Generation's decode step: row s of `query [S, hq·d]` attends to rows `starts[s] ..< starts[s] + lengths[s]` of
    /// `keys` and `values [N, hkv·d]` (a KV cache; every row visible) → `[S, hq·d]`, all sequences at once.
    func decodeAttention(query: Tensor, keys: Tensor, values: Tensor, starts: [Int], lengths: [Int], shape: DecodeAttentionShape) throws -> Tensor
    func attentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape: AttentionShape
    ) throws -> AttentionGradients

    // MARK: Embedding and loss

    /// `out[i] = table[ids[i]]`: table `[V, C]`, ids `int32 [n]` → `[n, C]`.
    func embedding(_ table: Tensor, ids: Tensor) throws -> Tensor
    /// Scatter-adds `dy [n, C]` into `tableGradient [V, C]` at `ids`.
    func embeddingBackward(_ dy: Tensor, ids: Tensor, into tableGradient: Tensor) throws
    /// The column of each row's largest value, the first on ties: `int32 [rows]` for `x [rows, cols]` (greedy
    /// decoding reads these back instead of the logits).
    func argmaxRows(_ x: Tensor) throws -> Tensor
    /// One draw per row from `softmax(x[r] / temperatures[r])` by inverse transform with `uniforms[r]` in [0, 1) (the
    /// first column whose running sum of the weights exceeds `uniforms[r]` of their total); temperature 0 is
    /// `argmaxRows`. `int32 [rows]`: sampled decoding reads these back instead of the logits.
    func sampleRows(_ x: Tensor, temperatures: [Float], uniforms: [Float]) throws -> Tensor
    /// `x` with the columns outside each row's kept set at −∞, for top-k and top-p (nucleus) sampling on the device:
    /// a row's columns ranked by value (highest first, ties by column), the first `keep` of them, where `keep` is
    /// `topK[r]` (0: no limit) or fewer — the fewest whose weights `exp(x / temperatures[r])` reach `topP[r]` of the
    /// row's total (1: no limit). NaNs are never kept; rows at temperature 0 (greedy) are copied as they are.
    /// `sampleRows` then draws from what is kept, as ``TokenSampler`` does on the host.
    func truncatedLogits(_ x: Tensor, temperatures: [Float], topK: [Int], topP: [Float]) throws -> Tensor
    /// Mean softmax cross-entropy of logits `[n, V]` against `int32` targets `[n]`;
    /// targets equal to `ignoreIndex` do not count. Returns the loss and the probabilities.
    func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int32) throws -> CrossEntropyOutput
    /// `dlogits = scale · (p − onehot(target)) / counted` for counted rows, 0 for ignored rows.
    func crossEntropyBackward(_ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float) throws -> Tensor
    /// `crossEntropyBackward`, allowed to write `dlogits` over `saved.probabilities` (which are then gone): one
    /// `[n, V]` tensor less at the peak of a language model's backward pass.
    func crossEntropyBackwardConsuming(_ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float) throws -> Tensor

    // MARK: Optimizer

    /// One AdamW update in place (PyTorch semantics: decoupled weight decay, bias correction).
    /// `moment1`/`moment2` are float32 of the parameter's element count.
    func adamW(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep) throws
    /// AdamW over several tensors with one shared step (learning rate, betas, step number, gradient scale), each
    /// with its own weight decay and rounding. A backend may update many in one launch; the default updates
    /// them one by one.
    func adamW(_ tensors: [AdamWTensor], step: AdamWStep) throws
    /// LAMB (You et al. 2019, as apex's FusedLAMB and NVIDIA's BERT recipe run it) over several tensors: AdamW's
    /// direction `u = m̂/(√v̂ + ε) + λ·w` (moments updated as AdamW updates them), then `w −= lr·(‖w‖/‖u‖)·u` with each
    /// tensor's own trust ratio (1 when either norm is zero, or without weight decay), stored rounded to nearest.
    /// The default composes it from ops tensor by tensor (``composedLAMB(_:step:)``, Backend+LAMB.swift).
    func lamb(_ tensors: [AdamWTensor], step: AdamWStep) throws

    // MARK: N:M sparsity

    /// Magnitude mask: in each group of M along `direction`, the N largest |x| are kept (ties → lower index).
    /// With `within`, only positions where `within` is 1 are candidates, so the result is a subset of it
    /// (a group with fewer than N candidates keeps just those).
    func pruneMask(_ x: Tensor, pattern: NMPattern, direction: PruneDirection, within: Tensor?) throws -> Tensor
    /// Compresses a row-wise N:M matrix. `mask` (row-wise, ≤ N kept per group) selects the kept entries;
    /// unused slots get value 0. Without a mask the N largest |x| per group are kept.
    func compress(_ x: Tensor, pattern: NMPattern, mask: Tensor?) throws -> CompressedMatrix
    /// The dense matrix with zeros at pruned positions.
    func decompress(_ matrix: CompressedMatrix) throws -> Tensor
    /// The values of a dense `[rows, columns]` tensor at `layout`'s slots (e.g. compressing dW onto Mr).
    func gatherCompressed(_ dense: Tensor, layout: CompressedMatrix) throws -> Tensor
    /// `values += dense` at the layout's slots: a compressed gradient accumulated without a temporary.
    func accumulateGathered(_ dense: Tensor, layout: CompressedMatrix, into values: Tensor) throws
    /// The kept positions of `matrix` as a dense `uint8` mask.
    func mask(of matrix: CompressedMatrix) throws -> Tensor
    /// `Y = X·Sᵀ (+ bias)` with `X [T, S.columns]` → `[T, S.rows]`, doing only the kept multiply-adds.
    func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Tensor
    /// `f(X·Sᵀ + bias)`: ``sparseMatmul(_:_:bias:)`` and the activation after it, which a backend may apply in the
    /// sparse GEMM's epilogue; the default composes the two.
    func sparseMatmulActivated(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, _ kind: Activation) throws -> Tensor
    /// `Y += X·Sᵀ` into an existing `Y [T, S.rows]` (a backward pass adding one projection's input gradient to
    /// another's: beta = 1 in the GEMM where the backend can). The default adds a new product.
    func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, accumulatingInto y: Tensor) throws
    /// Double pruning: from row-wise compressed `W [dout, din]` select a new column-wise mask `Mc ⊆ Mr`
    /// by magnitude and return the compressed `(W⊙Mc)ᵀ [din, dout]` (N:M along dout).
    func doublePrunedTranspose(of w: CompressedMatrix) throws -> CompressedMatrix
    /// Refreshes the values of `transposed` (from ``doublePrunedTranspose(of:)``) from the current `w`,
    /// keeping its mask. Slots outside Mr read 0.
    func refreshDoublePrunedTranspose(_ transposed: CompressedMatrix, from w: CompressedMatrix) throws
    /// Merged sparse + low-rank inference: `merged` stacks `[W⊙Mr; Lᵀ]` (`[dout + r, din]`); returns
    /// `Y = X·Wᵀ + (X·L)·R·scale + bias` with the multiply-add and the bias fused into one pass.
    func mergedSparseLowRankMatmul(
        _ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?
    ) throws -> Tensor

    // MARK: Ops on device-side indices, and recorded work (generation's decode step; defaults in Backend+Recording.swift)

    /// `destination[rows[i]] = source[i]` for the rows of `source`, `rows` an `int32` tensor on this backend.
    /// Index values are the caller's to keep in range: the CPU checks them, a GPU cannot without reading them back.
    func scatterRows(_ source: Tensor, into destination: Tensor, rows: Tensor) throws
    /// `result[i] = source[rows[i]]` as a new tensor `[rows.count, …]`, `rows` an `int32` tensor on this backend
    /// (values the caller's to keep in range, as ``scatterRows(_:into:rows:)``'s): an encoder's real tokens taken
    /// out of a padded batch with indices uploaded once a step.
    func gatherRows(_ source: Tensor, rows: Tensor) throws -> Tensor
    /// ``decodeAttention(query:keys:values:starts:lengths:shape:)`` with `ranges` an `int32 [2·S]` tensor on this
    /// backend: the S starts, then the S lengths, none above `maxLength` (which sizes the launch: the values are not
    /// read on the host).
    func decodeAttention(query: Tensor, keys: Tensor, values: Tensor, ranges: Tensor, maxLength: Int, shape: DecodeAttentionShape) throws -> Tensor
    /// ``rotaryEmbedding(_:layout:inverse:)`` forward, row r at position `positions[r]` (`int32 [rows]` on this
    /// backend), every position below `positionLimit`.
    func rotaryEmbedding(_ x: Tensor, positions: Tensor, headDimension: Int, base: Float, positionLimit: Int) throws -> Tensor
    /// ``splitColumns(_:widths:)`` with some parts written into existing tensors instead of new ones: part i, where
    /// `destinations[i]` is given, goes to rows `rows[r]` of it (as ``scatterRows(_:into:rows:)`` would put it) and
    /// the result holds nil there — a decode step's new keys and values straight into the KV cache.
    func splitColumns(_ x: Tensor, widths: [Int], scatteringInto destinations: [Tensor?], rows: Tensor) throws -> [Tensor?]
    /// Overwrites an `int32` tensor's elements with `values` (a recorded step's inputs, before it is replayed).
    func write(_ values: [Int32], into tensor: Tensor) throws
    /// `work`'s ops recorded to be replayed as one unit (a CUDA graph), without running them; nil where the backend
    /// records nothing (the caller then runs `work` itself). Recording fails, with nothing recorded, when `work`
    /// needs the host in between (an upload, a read-back): ops read inputs from tensors made before, rewritten by
    /// ``write(_:into:)``, never from host arrays. See ``RecordedWork``.
    func record(_ work: @escaping () throws -> Tensor) throws -> (any RecordedWork)?
    /// Whether ``record(_:)`` records (false where it always gives nil): generation pads its decode steps to a few
    /// batch sizes only where steps are recorded, one recording per size.
    var recordsWork: Bool { get }
}

/// Pointwise nonlinearities.
public enum Activation: String, Sendable, Codable, CaseIterable {
    /// GELU with the tanh approximation (GPT-2, OPT use this form).
    case gelu
    case relu
    /// x·sigmoid(x) (SwiGLU's gate).
    case silu
    /// BERT's pooler.
    case tanh
    /// GELU as `x·Φ(x)` with the error function (BERT's `gelu`; ``gelu`` is the tanh approximation).
    case geluExact = "gelu-exact"
}

public struct LayerNormOutput: Sendable {
    public let output: Tensor
    /// `[rows]` float32.
    public let mean: Tensor
    /// `[rows]` float32, 1/sqrt(var + eps).
    public let reciprocalStd: Tensor
    /// `x + residual` when the norm was given a residual (the tensor that was normalised).
    public let sum: Tensor?
    public init(output: Tensor, mean: Tensor, reciprocalStd: Tensor, sum: Tensor? = nil) {
        self.output = output
        self.mean = mean
        self.reciprocalStd = reciprocalStd
        self.sum = sum
    }
}

public struct LayerNormGradients: Sendable {
    public let input: Tensor
    public let weight: Tensor
    public let bias: Tensor
    /// `input` dropped, when backward was asked to drop it.
    public let droppedInput: Tensor?
    public init(input: Tensor, weight: Tensor, bias: Tensor, droppedInput: Tensor? = nil) {
        self.input = input
        self.weight = weight
        self.bias = bias
        self.droppedInput = droppedInput
    }
}

public struct CrossEntropyOutput: Sendable {
    /// 1-element float32 (float64 for float64 logits) mean loss.
    public let loss: Tensor
    /// `[n, V]` softmax of the logits, kept for backward.
    public let probabilities: Tensor
    /// Rows that counted (targets ≠ ignoreIndex).
    public let countedRows: Int
    public init(loss: Tensor, probabilities: Tensor, countedRows: Int) {
        self.loss = loss
        self.probabilities = probabilities
        self.countedRows = countedRows
    }
}

/// Hyper-parameters of one AdamW update.
/// One tensor of a multi-tensor AdamW step (``Backend/adamW(_:step:)``).
public struct AdamWTensor {
    public let parameter: Tensor
    public let gradient: Tensor
    public let moment1: Tensor
    public let moment2: Tensor
    public var weightDecay: Float
    public var rounding: ParameterRounding

    public init(parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, weightDecay: Float, rounding: ParameterRounding) {
        (self.parameter, self.gradient, self.moment1, self.moment2) = (parameter, gradient, moment1, moment2)
        self.weightDecay = weightDecay
        self.rounding = rounding
    }

    /// The shared step with this tensor's weight decay and rounding.
    public func step(_ shared: AdamWStep) -> AdamWStep {
        var step = shared
        step.weightDecay = weightDecay
        step.rounding = rounding
        return step
    }
}

public struct AdamWStep: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    /// 1-based step number, for bias correction.
    public var step: Int
    /// Multiplies the gradient first (global-norm clipping without an extra pass).
    public var gradientScale: Float
    /// How a bfloat16 parameter stores its new value (other dtypes always round to nearest).
    public var rounding: ParameterRounding

    public init(
        learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0.01, step: Int, gradientScale: Float = 1, rounding: ParameterRounding = .nearest
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
        self.gradientScale = gradientScale
        self.rounding = rounding
    }
}

extension Backend {
    /// `op(A)·op(B)` into a new tensor.
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        try gemm(a, b, transposeA: transposeA, transposeB: transposeB, alpha: 1, beta: 0, into: nil, bias: nil)
    }

    public func sparseMatmulActivated(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?, _ kind: Activation) throws -> Tensor {
        try activation(sparseMatmul(x, s, bias: bias), kind)
    }

    public func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, accumulatingInto y: Tensor) throws {
        try accumulate(sparseMatmul(x, s, bias: nil), into: y, alpha: 1)
    }

    public func adamW(_ tensors: [AdamWTensor], step: AdamWStep) throws {
        for tensor in tensors {
            try adamW(parameter: tensor.parameter, gradient: tensor.gradient, moment1: tensor.moment1, moment2: tensor.moment2, step: tensor.step(step))
        }
    }

    public func linearWeightGradient(outputGradient dy: Tensor, input x: Tensor, into weightGradient: Tensor?, biasGradient: Tensor?) throws -> Tensor {
        try unfusedLinearWeightGradient(outputGradient: dy, input: x, into: weightGradient, biasGradient: biasGradient)
    }

    /// ``linearWeightGradient(outputGradient:input:into:biasGradient:)`` as a GEMM and a column sum.
    public func unfusedLinearWeightGradient(outputGradient dy: Tensor, input x: Tensor, into weightGradient: Tensor?, biasGradient: Tensor?) throws -> Tensor {
        let dw = try gemm(dy, x, transposeA: true, transposeB: false, alpha: 1, beta: 1, into: weightGradient, bias: nil)
        if let biasGradient { try accumulateColumnSums(dy, into: biasGradient) }
        return dw
    }

    public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, epsilon: Float) throws -> LayerNormOutput {
        try layerNorm(x, adding: nil, droppingResidual: nil, weight: weight, bias: bias, epsilon: epsilon)
    }

    public func layerNorm(_ x: Tensor, adding residual: Tensor?, weight: Tensor, bias: Tensor, epsilon: Float) throws -> LayerNormOutput {
        try layerNorm(x, adding: residual, droppingResidual: nil, weight: weight, bias: bias, epsilon: epsilon)
    }

    public func layerNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput) throws -> LayerNormGradients {
        try layerNormBackward(dy, input: x, weight: weight, saved: saved, addingGradient: nil, droppingInputGradient: nil)
    }

    public func layerNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput, addingGradient residualGradient: Tensor?
    ) throws -> LayerNormGradients {
        try layerNormBackward(dy, input: x, weight: weight, saved: saved, addingGradient: residualGradient, droppingInputGradient: nil)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> RMSNormOutput {
        try rmsNorm(x, adding: nil, weight: weight, epsilon: epsilon)
    }

    public func rmsNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput) throws -> RMSNormGradients {
        try rmsNormBackward(dy, input: x, weight: weight, saved: saved, addingGradient: nil)
    }

    public func crossEntropyBackwardConsuming(_ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float) throws -> Tensor {
        try crossEntropyBackward(saved, targets: targets, ignoreIndex: ignoreIndex, scale: scale)
    }

    public func linearActivated(_ x: Tensor, weight: Tensor, bias: Tensor?, _ kind: Activation) throws -> Tensor {
        try activation(gemm(x, weight, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: bias), kind)
    }

    public func gatedActivation(gate: Tensor, up: Tensor, _ kind: Activation) throws -> Tensor {
        try multiply(activation(gate, kind), up)
    }

    public func gatedActivationBackward(gate: Tensor, up: Tensor, gradient dh: Tensor, _ kind: Activation) throws -> GatedActivationGradients {
        GatedActivationGradients(gate: try activationBackward(gate, gradient: multiply(dh, up), kind), up: try multiply(dh, activation(gate, kind)))
    }

    public func accumulateGathered(_ dense: Tensor, layout: CompressedMatrix, into values: Tensor) throws {
        try accumulate(gatherCompressed(dense, layout: layout), into: values, alpha: 1)
    }

    public func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws {
        try accumulate(sumRows(x), into: target, alpha: 1)
    }

    public func totalSumOfSquares(_ tensors: [Tensor]) throws -> Double {
        try tensors.reduce(0) { total, tensor in try total + scalar(sumOfSquares(tensor)) }
    }

    /// A tensor's single element as Double (for losses and norms).
    public func scalar(_ tensor: Tensor) throws -> Double {
        guard tensor.count == 1 else {
            throw TensorError.shapeMismatch(operation: "scalar", shapes: [tensor.shape], reason: "expected 1 element")
        }
        return try doubles(tensor)[0]
    }

    /// Normal(0, std²) samples seeded by one draw from `generator` (filled in parallel; see ``RandomSamples``).
    public func randomNormal(
        _ shape: [Int], std: Double = 1, dtype: DType = .float32, using generator: inout SeededGenerator
    ) throws -> Tensor {
        try tensor(RandomSamples.normal(shape.reduce(1, *), std: Float(std), using: &generator), shape: shape, dtype: dtype)
    }

    /// Uniform(−bound, bound) samples seeded by one draw from `generator`.
    public func randomUniform(
        _ shape: [Int], bound: Double, dtype: DType = .float32, using generator: inout SeededGenerator
    ) throws -> Tensor {
        try tensor(RandomSamples.uniform(shape.reduce(1, *), bound: Float(bound), using: &generator), shape: shape, dtype: dtype)
    }
}
