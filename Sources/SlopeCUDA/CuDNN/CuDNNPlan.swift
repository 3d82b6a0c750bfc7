import CCUDA
import SlopeCore

/// A ``CuDNNGraph`` made into cuDNN backend descriptors and an execution plan: the first engine configuration
/// cuDNN's heuristics rank that finalizes into a plan. Kept per shape and reused for every call.
final class CuDNNPlan: @unchecked Sendable {
    let graph: CuDNNGraph
    let workspaceBytes: Int
    /// The engine that runs it, for reports ("engine 8").
    let engine: Int64
    var label: String { "\(graph.name), engine \(engine)" }
    private let plan: CuDNNDescriptor
    private let api: CuDNNAPI
    /// Every descriptor the plan was made from: kept for the plan's life, as the frontend keeps its graph.
    private let retained: [CuDNNDescriptor]

    init(_ graph: CuDNNGraph, handle: cudnnHandle_t, api: CuDNNAPI) throws {
        if let problem = graph.wiringProblem {
            throw TensorError.invalidArgument(operation: "cuDNN graph \(graph.name)", reason: problem)
        }
        self.graph = graph
        self.api = api
        var tensors: [Int64: CuDNNDescriptor] = [:]
        for spec in graph.tensors {
            tensors[spec.uid] = try CuDNNDescriptor(.tensor, api: api) { tensor in
                try tensor.set(.tensorDataType, .dataType, enumValue: spec.dataType.rawValue)
                try tensor.set(.tensorDimensions, int64s: spec.dimensions)
                try tensor.set(.tensorStrides, int64s: spec.strides)
                try tensor.set(.tensorUniqueID, int64: spec.uid)
                try tensor.set(.tensorByteAlignment, int64: 16)
                try tensor.set(.tensorIsVirtual, bool: spec.isVirtual)
                if spec.isByValue { try tensor.set(.tensorIsByValue, bool: true) }
            }
        }
        // Operation descriptors keep references to their sub-descriptors, which must outlive the graph's finalize.
        var keep: [CuDNNDescriptor] = []
        var operations: [CuDNNDescriptor] = []
        for operation in graph.operations {
            switch operation {
            case let .matmul(a, b, c):
                let matmul = try CuDNNDescriptor(.matmul, api: api) {
                    try $0.set(.matmulComputeType, .dataType, enumValue: CuDNN.DataType.float.rawValue)
                }
                keep.append(matmul)
                operations.append(try CuDNNDescriptor(.operationMatmul, api: api) { op in
                    try op.set(.operationMatmulA, descriptor: tensors[a]!)
                    try op.set(.operationMatmulB, descriptor: tensors[b]!)
                    try op.set(.operationMatmulC, descriptor: tensors[c]!)
                    try op.set(.operationMatmulDescriptor, descriptor: matmul)
                })
            case let .pointwise(mode, x, b, t, y, axis):
                let pointwise = try CuDNNDescriptor(.pointwise, api: api) { pointwise in
                    try pointwise.set(.pointwiseMode, .pointwiseMode, enumValue: mode.rawValue)
                    // Comparisons compute in booleans (as cuDNN's frontend sets them), everything else in float32.
                    let precision: CuDNN.DataType = mode == .greaterOrEqual ? .boolean : .float
                    try pointwise.set(.pointwiseMathPrecision, .dataType, enumValue: precision.rawValue)
                    if let axis { try pointwise.set(.pointwiseAxis, int64: axis) }
                }
                keep.append(pointwise)
                operations.append(try CuDNNDescriptor(.operationPointwise, api: api) { op in
                    try op.set(.operationPointwiseDescriptor, descriptor: pointwise)
                    try op.set(.operationPointwiseX, descriptor: tensors[x]!)
                    if let b { try op.set(.operationPointwiseB, descriptor: tensors[b]!) }
                    if let t { try op.set(.operationPointwiseT, descriptor: tensors[t]!) }
                    try op.set(.operationPointwiseY, descriptor: tensors[y]!)
                    try op.set(.operationPointwiseAlpha1, float: 1)
                    try op.set(.operationPointwiseAlpha2, float: 1)
                })
            case let .reduction(mode, x, y):
                let reduction = try CuDNNDescriptor(.reduction, api: api) { reduction in
                    try reduction.set(.reductionOperator, .reductionMode, enumValue: mode.rawValue)
                    try reduction.set(.reductionComputeType, .dataType, enumValue: CuDNN.DataType.float.rawValue)
                }
                keep.append(reduction)
                operations.append(try CuDNNDescriptor(.operationReduction, api: api) { op in
                    try op.set(.operationReductionX, descriptor: tensors[x]!)
                    try op.set(.operationReductionY, descriptor: tensors[y]!)
                    try op.set(.operationReductionDescriptor, descriptor: reduction)
                })
            case let .reshape(x, y):
                operations.append(try CuDNNDescriptor(.operationReshape, api: api) { op in
                    try op.set(.operationReshapeX, descriptor: tensors[x]!)
                    try op.set(.operationReshapeY, descriptor: tensors[y]!)
                })
            }
        }
        let operationGraph = try CuDNNDescriptor(.operationGraph, api: api) {
            try $0.set(.operationGraphHandle, handle: handle)
            try $0.set(.operationGraphOperations, descriptors: operations)
        }

        // The first engine configuration that makes a plan, in the order cuDNN's heuristics rank them (mode A, as
        // PyTorch asks; the fallback list where A has none).
        var failures: [String] = []
        var tried = 0
        var chosen: (plan: CuDNNDescriptor, configuration: CuDNNDescriptor, heuristics: CuDNNDescriptor)?
        search: for mode in [CuDNN.HeuristicsMode.a, .fallback] {
            let heuristics = try CuDNNDescriptor(.engineHeuristics, api: api)
            try heuristics.set(.engineHeuristicsOperationGraph, descriptor: operationGraph)
            try heuristics.set(.engineHeuristicsMode, .heuristicsMode, enumValue: mode.rawValue)
            guard (try? heuristics.finalize()) != nil else { continue }
            let configurations = try heuristics.descriptors(
                .engineHeuristicsResults, of: .engineConfiguration, capacity: try heuristics.count(.engineHeuristicsResults))
            for configuration in configurations {
                tried += 1
                do {
                    let plan = try CuDNNDescriptor(.executionPlan, api: api) { plan in
                        try plan.set(.executionPlanHandle, handle: handle)
                        try plan.set(.executionPlanEngineConfiguration, descriptor: configuration)
                    }
                    chosen = (plan, configuration, heuristics)
                    break search
                } catch {
                    failures.append("\(error)")
                }
            }
        }
        guard let chosen else {
            throw CUDAError.callFailed(
                call: "cuDNN has no engine for \(graph.name) (\(tried) configurations tried"
                    + (failures.isEmpty ? "" : ": " + failures.prefix(2).joined(separator: "; ")) + ")",
                library: .cudnn, status: 3000)
        }
        plan = chosen.plan
        workspaceBytes = Int(try chosen.plan.int64(.executionPlanWorkspaceSize))
        engine = (try? Self.engineIndex(of: chosen.configuration, api: api)) ?? -1
        retained = Array(tensors.values) + keep + operations + [operationGraph, chosen.heuristics, chosen.configuration]
    }

    /// The global index of the engine a configuration uses.
    private static func engineIndex(of configuration: CuDNNDescriptor, api: CuDNNAPI) throws -> Int64 {
        let engine = try configuration.descriptors(.engineConfigurationEngine, of: .engine, capacity: 1)
        guard let engine = engine.first else { return -1 }
        return try engine.int64(.engineGlobalIndex)
    }

    /// Runs the plan on the handle's stream: `pointers` holds each non-virtual tensor's device address by tensor
    /// name, `scalars` each by-value scalar (cuDNN reads them during the call).
    func execute(
        handle: cudnnHandle_t, pointers: [String: UnsafeMutableRawPointer], scalars: [String: Float], workspace: UnsafeMutableRawPointer?
    ) throws {
        let boundary = graph.boundaryTensors
        let values = UnsafeMutablePointer<Float>.allocate(capacity: max(boundary.count, 1))
        defer { values.deallocate() }
        let addresses = try boundary.enumerated().map { index, tensor -> UnsafeMutableRawPointer? in
            if tensor.isByValue, let scalar = scalars[tensor.name] {
                values[index] = scalar
                return UnsafeMutableRawPointer(values + index)
            }
            guard !tensor.isByValue, let pointer = pointers[tensor.name] else {
                throw TensorError.invalidArgument(operation: "cuDNN \(graph.name)", reason: "no \(tensor.isByValue ? "value" : "memory") given for \(tensor.name)")
            }
            return pointer
        }
        let pack = try CuDNNDescriptor(.variantPack, api: api) { pack in
            try pack.set(.variantPackUniqueIDs, int64s: boundary.map(\.uid))
            try pack.set(.variantPackDataPointers, pointers: addresses)
            try pack.set(.variantPackWorkspace, pointer: workspace)
        }
        try api.check(api.cudnnBackendExecute(handle, plan.raw, pack.raw), "cudnnBackendExecute(\(graph.name))")
    }
}
