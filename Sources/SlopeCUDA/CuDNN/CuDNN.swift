/// The cuDNN 9 backend-API constants slope uses (cudnn_graph.h; cuDNN keeps these enums append-only within major
/// version 9, so the values hold for every 9.x). Each is a C enum: a 32-bit int.
enum CuDNN {
    enum DescriptorType: Int32, Sendable {
        case pointwise = 0, engine = 2, engineConfiguration = 3, engineHeuristics = 4, executionPlan = 5
        case operationPointwise = 13, operationGraph = 15, variantPack = 16, tensor = 17, matmul = 18
        case operationMatmul = 19, reduction = 21, operationReduction = 22, operationReshape = 31
    }

    enum AttributeType: Int32, Sendable {
        case handle = 0, dataType = 1, boolean = 2, int64 = 3, float = 4, double = 5, voidPointer = 6
        case heuristicsMode = 8, pointwiseMode = 14, backendDescriptor = 15, reductionMode = 18
    }

    enum Attribute: Int32, Sendable {
        case pointwiseMode = 0, pointwiseMathPrecision = 1, pointwiseAxis = 9
        case engineHeuristicsMode = 200, engineHeuristicsOperationGraph = 201, engineHeuristicsResults = 202
        case engineConfigurationEngine = 300
        case executionPlanHandle = 400, executionPlanEngineConfiguration = 401, executionPlanWorkspaceSize = 402
        case operationPointwiseDescriptor = 750, operationPointwiseX = 751, operationPointwiseB = 752
        case operationPointwiseY = 753, operationPointwiseAlpha1 = 754, operationPointwiseAlpha2 = 755
        case operationPointwiseT = 758
        case operationGraphHandle = 800, operationGraphOperations = 801
        case tensorByteAlignment = 900, tensorDataType = 901, tensorDimensions = 902, tensorStrides = 903
        case tensorUniqueID = 906, tensorIsVirtual = 907, tensorIsByValue = 908
        case variantPackUniqueIDs = 1000, variantPackDataPointers = 1001, variantPackWorkspace = 1003
        case engineGlobalIndex = 1301
        case matmulComputeType = 1500
        case operationMatmulA = 1520, operationMatmulB = 1521, operationMatmulC = 1522, operationMatmulDescriptor = 1523
        case reductionOperator = 1600, reductionComputeType = 1601
        case operationReductionX = 1610, operationReductionY = 1611, operationReductionDescriptor = 1612
        case operationReshapeX = 2200, operationReshapeY = 2201
    }

    enum DataType: Int32, Sendable {
        case float = 0, half = 2, int32 = 4, bfloat16 = 9, boolean = 11
    }

    enum PointwiseMode: Int32, Sendable {
        case add = 0, multiply = 1, divide = 6, subtract = 9, exp = 13, log = 15, identity = 21
        case greaterOrEqual = 303, genIndex = 501, binarySelect = 601
    }

    enum ReductionMode: Int32, Sendable {
        case add = 0, maximum = 3
    }

    enum HeuristicsMode: Int32, Sendable {
        case fallback = 2, a = 3
    }
}
