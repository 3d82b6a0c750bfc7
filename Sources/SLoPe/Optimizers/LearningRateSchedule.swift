import RealModule

/// Learning rate over training: linear warm-up from 0 to `peak`, then constant, linear or cosine decay
/// to `minimum` at `totalSteps`, or NVIDIA's BERT recipe's polynomial decay.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public enum Decay: String, Sendable, Codable, CaseIterable {
        case constant, linear, cosine
        /// NVIDIA's BERT pretraining (`PolyWarmUpScheduler`, degree 0.5): `peak·(1 − step/totalSteps)^0.5` — the
        /// progress counted from step 0, not from the end of warm-up — floored at `minimum`.
        case polynomial
    }

    public var peak: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay

    public init(peak: Float, minimum: Float = 0, warmupSteps: Int = 0, totalSteps: Int, decay: Decay = .cosine) throws {
        guard peak > 0, minimum >= 0, minimum <= peak else {
            throw TensorError.invalidArgument(operation: "LearningRateSchedule", reason: "need 0 ≤ minimum ≤ peak and peak > 0")
        }
        guard totalSteps >= 1, warmupSteps >= 0, warmupSteps <= totalSteps else {
            throw TensorError.invalidArgument(
                operation: "LearningRateSchedule", reason: "need 0 ≤ warmupSteps (\(warmupSteps)) ≤ totalSteps (\(totalSteps))")
        }
        self.peak = peak
        self.minimum = minimum
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    /// The rate for 1-based step `step`.
    public func learningRate(atStep step: Int) -> Float {
        if step <= warmupSteps { return peak * Float(step) / Float(max(warmupSteps, 1)) }
        let decaySteps = totalSteps - warmupSteps
        let progress = decaySteps == 0 ? 1 : min(1, Float(step - warmupSteps) / Float(decaySteps))
        switch decay {
        case .constant: return peak
        case .linear: return minimum + (peak - minimum) * (1 - progress)
        case .cosine: return minimum + (peak - minimum) * 0.5 * (1 + Float.cos(Float.pi * progress))
        case .polynomial: return max(minimum, peak * Float.sqrt(max(0, 1 - Float(step) / Float(totalSteps))))
        }
    }
}
