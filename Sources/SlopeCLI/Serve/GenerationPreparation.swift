import Foundation
import SLoPe

/// How `generate`, `serve` and the generation benchmarks ready a model: SLoPe layers merged with their adapters (unless
/// the command says not to), and each block's q, k and v stacked into one projection unless
/// `SLOPE_STACK_PROJECTIONS=0` (kept to measure what stacking saves).
enum GenerationPreparation {
    static func stacksProjections(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        try EnvironmentSwitch.isOn("SLOPE_STACK_PROJECTIONS", default: true, off: "q, k and v projected apart", on: "stacked", environment)
    }

    static func prepare(_ model: TransformerModel, merging: Bool) throws {
        try model.prepareForGeneration(merging: merging, stacking: stacksProjections())
    }
}
