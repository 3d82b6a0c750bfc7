import SlopeCore

/// The CUDA backend's switches, read from the environment once, when the backend is made: each bad value is refused
/// with its variable's name and the values it takes (checked on the CPU, where the backend itself cannot be made).
struct BackendSettings {
    /// `SLOPE_SPARSE_GEMM`: one route for every sparse GEMM instead of the measured choice.
    var sparseRoute: String?
    /// `SLOPE_SPARSE_BIAS=kernel`: SLoPe biases added by a kernel after the GEMM instead of cuSPARSELt's epilogue.
    var sparseBiasEpilogue = true
    /// `SLOPE_FUSIONS`.
    var fusions = Set(Fusion.allCases)
    /// `SLOPE_ATTENTION` (auto: nil).
    var attentionRoute: AttentionRoute?
    /// `SLOPE_ATTENTION_VARIANT=F,B`.
    var attentionVariant = (forward: 0, backward: 0)
    /// `SLOPE_MERGED_INFERENCE` (auto: nil).
    var mergedInferenceForm: MergedInferenceForm?
    /// `SLOPE_PINNED_UPLOADS=1`.
    var pinnedUploads = false
    /// `SLOPE_SKINNY_KERNEL`.
    var skinnyKernel = SkinnySparseGEMM.Kernel.mma
    /// `SLOPE_SKINNY_WARPS`: warps per SM the tensor-core skinny kernel's grid aims at.
    var skinnyWarpsPerMultiprocessor = SkinnySparseGEMM.defaultWarpsPerMultiprocessor
    /// `SLOPE_DENSE_GEMM`.
    var denseGEMMChoice = SkinnyDenseGEMM.Choice.auto
    /// `SLOPE_CUDA_GRAPHS=0` turns recorded decode steps off.
    var recordsGraphs = true
    /// `SLOPE_DECODE_ATTENTION`.
    var decodeAttentionKernel = DecodeAttentionKernel.wide

    /// The variables read (beside the kernel cache's).
    static let variables = [
        "SLOPE_SPARSE_GEMM", "SLOPE_ATTENTION", "SLOPE_SPARSE_BIAS", "SLOPE_ATTENTION_VARIANT", "SLOPE_MERGED_INFERENCE", "SLOPE_FUSIONS",
        "SLOPE_PINNED_UPLOADS", "SLOPE_CUDA_GRAPHS", "SLOPE_SKINNY_KERNEL", "SLOPE_DENSE_GEMM", "SLOPE_DECODE_ATTENTION",
        "SLOPE_SKINNY_WARPS",
    ]

    init() {}

    /// The skinny kernel as the decisions file names it: routes timed with one kernel (or one launch shape of it) are
    /// not another's.
    var skinnyDecisionsTag: String {
        skinnyKernel.rawValue + (skinnyWarpsPerMultiprocessor == SkinnySparseGEMM.defaultWarpsPerMultiprocessor ? "" : "-w\(skinnyWarpsPerMultiprocessor)")
    }

    init(_ environment: [String: String]) throws {
        func refuse(_ variable: String, _ values: String, _ text: String) -> TensorError {
            TensorError.invalidArgument(operation: variable, reason: "must be \(values), not '\(text)'")
        }
        func choice<Value: RawRepresentable<String>>(_ variable: String, _ values: String, auto: Bool = true) throws -> Value? {
            guard let text = environment[variable], !(auto && text == "auto") else { return nil }
            guard let value = Value(rawValue: text) else { throw refuse(variable, values, text) }
            return value
        }
        if let route = environment["SLOPE_SPARSE_GEMM"], route != "auto" {
            guard SparseGEMMDecision.Route.forcible.contains(where: { $0.rawValue == route }) else {
                throw refuse("SLOPE_SPARSE_GEMM", "auto, dense, sparseA, sparseB or skinny", route)
            }
            sparseRoute = route
        }
        switch environment["SLOPE_SPARSE_BIAS"] {
        case nil, "epilogue"?: sparseBiasEpilogue = true
        case "kernel"?: sparseBiasEpilogue = false
        case let other?: throw refuse("SLOPE_SPARSE_BIAS", "epilogue or kernel", other)
        }
        if let text = environment["SLOPE_FUSIONS"] { fusions = try Fusion.parse(text) }
        if let text = environment["SLOPE_ATTENTION_VARIANT"] {
            let parts = text.split(separator: ",").map { Int($0) }
            guard parts.count == 2, let forward = parts[0], let backward = parts[1], forward >= 0, backward >= 0 else {
                throw refuse("SLOPE_ATTENTION_VARIANT", "two variant indices FORWARD,BACKWARD such as 0,1", text)
            }
            attentionVariant = (forward, backward)
        }
        attentionRoute = try choice("SLOPE_ATTENTION", "auto, cudnn, fused, gemm or flash")
        mergedInferenceForm = try choice("SLOPE_MERGED_INFERENCE", "auto, folded, factored, stacked or skinny")
        switch environment["SLOPE_PINNED_UPLOADS"] {
        case nil, "0"?: pinnedUploads = false
        case "1"?: pinnedUploads = true
        case let other?: throw refuse("SLOPE_PINNED_UPLOADS", "1 (stage uploads through pinned memory) or 0", other)
        }
        skinnyKernel = try choice("SLOPE_SKINNY_KERNEL", "mma, staged or plain", auto: false) ?? .mma
        if let text = environment["SLOPE_SKINNY_WARPS"] {
            guard let warps = Int(text), (4...64).contains(warps) else { throw refuse("SLOPE_SKINNY_WARPS", "warps per SM from 4 to 64", text) }
            skinnyWarpsPerMultiprocessor = warps
        }
        denseGEMMChoice = try choice("SLOPE_DENSE_GEMM", "auto, cublaslt or skinny", auto: false) ?? .auto
        decodeAttentionKernel = try choice("SLOPE_DECODE_ATTENTION", "plain or wide", auto: false) ?? .wide
        switch environment["SLOPE_CUDA_GRAPHS"] {
        case nil, "1"?: recordsGraphs = true
        case "0"?: recordsGraphs = false
        case let other?: throw refuse("SLOPE_CUDA_GRAPHS", "1 (record decode steps) or 0", other)
        }
    }
}
