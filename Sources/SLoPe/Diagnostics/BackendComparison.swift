/// Runs every backend op on fresh random inputs on a candidate backend (the GPU) and on the reference
/// (the CPU) and compares the results: `slope doctor`'s checks.
///
/// Error measure: max |candidate − reference| / max |reference| over the output (norm-wise relative),
/// so values near zero do not dominate. Masks and indices must match exactly.
public final class BackendComparison {
    public struct Check: Sendable {
        public let name: String
        public let dtype: DType
        public let error: Double
        public let tolerance: Double
        /// Set when the op threw instead of returning.
        public let failure: String?
        /// For a check with several outputs, which one differed most.
        public var worstOutput: String?
        /// Every output over the tolerance with its error, in output order (what a failure report lists).
        public var outputsOverTolerance: [(output: String, error: Double)] = []
        public var passed: Bool { failure == nil && error <= tolerance }
    }

    public let reference: any Backend
    public let candidate: any Backend
    /// When set, only checks whose names contain it (ignoring case) run; the rest are skipped, not reported.
    public var only: String?
    /// Added to every check's name (a rerun of some checks under another setting, named as such).
    public var nameSuffix = ""
    private var seed: UInt64 = 1

    public init(reference: any Backend, candidate: any Backend) {
        self.reference = reference
        self.candidate = candidate
    }

    /// DESIGN.md §2's tolerances: float32 1e-5, bfloat16 / float16 2e-2.
    public static func tolerance(for dtype: DType) -> Double {
        dtype == .float32 || dtype == .float64 ? 1e-5 : 2e-2
    }

    /// Relative error of two float tensors, or exact comparison (0 or 1) for integer ones.
    func difference(_ candidateValue: Tensor, _ referenceValue: Tensor) throws -> Double {
        guard candidateValue.shape == referenceValue.shape else { return .infinity }
        if !candidateValue.dtype.isFloatingPoint {
            return try candidate.doubles(candidateValue) == reference.doubles(referenceValue) ? 0 : 1
        }
        let a = try candidate.doubles(candidateValue), b = try reference.doubles(referenceValue)
        var worst = 0.0, scale = 0.0
        for i in a.indices {
            let gap = abs(a[i] - b[i])
            if gap.isNaN { return .infinity }
            worst = max(worst, gap)
            scale = max(scale, abs(b[i]))
        }
        return scale == 0 ? worst : worst / scale
    }

    /// A pair of identical random tensors, one on each backend (rounded to `dtype` once, on the host).
    func random(_ shape: [Int], _ dtype: DType, std: Double = 1) throws -> (Tensor, Tensor) {
        seed &+= 1
        var generator = SeededGenerator(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal() * std) }
        return (try candidate.tensor(values, shape: shape, dtype: dtype), try reference.tensor(values, shape: shape, dtype: dtype))
    }

    func pair(_ values: [Int32], _ shape: [Int]) throws -> (Tensor, Tensor) {
        (try candidate.tensor(values, shape: shape), try reference.tensor(values, shape: shape))
    }

    /// Runs `body` on both backends and compares each output pair.
    /// `labels`, when given, names the outputs (for reporting the worst one).
    func check(
        _ name: String, _ dtype: DType, _ results: inout [Check], tolerance: Double? = nil, labels: [String]? = nil,
        _ body: (any Backend, Bool) throws -> [Tensor]
    ) {
        if let only, !name.lowercased().contains(only.lowercased()) { return }
        let name = name + nameSuffix
        do {
            let outputs = try body(candidate, true)
            let expected = try body(reference, false)
            let errors = try zip(outputs, expected).map { try difference($0, $1) }
            let worst = errors.indices.max { errors[$0] < errors[$1] || errors[$1].isNaN }
            var result = Check(name: name, dtype: dtype, error: worst.map { errors[$0] } ?? 0, tolerance: tolerance ?? Self.tolerance(for: dtype), failure: nil)
            func label(_ index: Int) -> String { labels.map { index < $0.count ? $0[index] : "output \(index)" } ?? "output \(index)" }
            if let worst { result.worstOutput = label(worst) }
            result.outputsOverTolerance = errors.indices.filter { !(errors[$0] <= result.tolerance) }.map { (label($0), errors[$0]) }
            results.append(result)
        } catch {
            results.append(Check(name: name, dtype: dtype, error: .infinity, tolerance: tolerance ?? Self.tolerance(for: dtype), failure: "\(error)"))
        }
    }
}
