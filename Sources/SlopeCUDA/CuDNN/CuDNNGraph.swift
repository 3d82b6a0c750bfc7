/// A cuDNN operation graph as plain data: its tensors and operations in order. Attention graphs are built as
/// this (``CuDNNAttentionGraph``), checked without a GPU by the tests, and only then turned into backend
/// descriptors (``CuDNNPlan``). Tensors are named by their unique id; operations refer to tensors by id.
struct CuDNNGraph: Sendable, Equatable {
    /// What it computes, for profiles and errors ("attention forward 4×2048×32×128").
    var name = ""

    struct Tensor: Sendable, Equatable {
        let uid: Int64
        let name: String
        let dimensions: [Int64]
        let strides: [Int64]
        let dataType: CuDNN.DataType
        /// Lives only inside the fused kernel: no memory, no pointer in the variant pack.
        var isVirtual = false
        /// A scalar passed by value (the variant pack points at host memory).
        var isByValue = false
    }

    enum Operation: Sendable, Equatable {
        /// `c = a·b` over the last two dimensions, batched over the others, accumulated in float32.
        case matmul(a: Int64, b: Int64, c: Int64)
        /// `y = mode(x [, b])`; `axis` for ``CuDNN/PointwiseMode/genIndex``, `t` the selector of binary select.
        case pointwise(CuDNN.PointwiseMode, x: Int64, b: Int64? = nil, t: Int64? = nil, y: Int64, axis: Int64? = nil)
        /// `y = mode(x)` over the dimensions where y has extent 1.
        case reduction(CuDNN.ReductionMode, x: Int64, y: Int64)
        /// `y` is `x` seen through other dimensions and strides (a transpose view).
        case reshape(x: Int64, y: Int64)

        var inputs: [Int64] {
            switch self {
            case let .matmul(a, b, _): return [a, b]
            case let .pointwise(_, x, b, t, _, _): return [x] + [b, t].compactMap { $0 }
            case let .reduction(_, x, _), let .reshape(x, _): return [x]
            }
        }

        var output: Int64 {
            switch self {
            case let .matmul(_, _, c): return c
            case let .pointwise(_, _, _, _, y, _): return y
            case let .reduction(_, _, y), let .reshape(_, y): return y
            }
        }
    }

    private(set) var tensors: [Tensor] = []
    private(set) var operations: [Operation] = []

    /// Adds a tensor with the next unique id.
    mutating func tensor(
        _ name: String, _ dimensions: [Int], strides: [Int], _ dataType: CuDNN.DataType, virtual: Bool = false, byValue: Bool = false
    ) -> Int64 {
        let uid = Int64(tensors.count + 1)
        tensors.append(Tensor(
            uid: uid, name: name, dimensions: dimensions.map(Int64.init), strides: strides.map(Int64.init), dataType: dataType,
            isVirtual: virtual, isByValue: byValue))
        return uid
    }

    /// A virtual float32 tensor of these dimensions, packed row-major.
    mutating func intermediate(_ name: String, _ dimensions: [Int]) -> Int64 {
        tensor(name, dimensions, strides: Self.packedStrides(dimensions), .float, virtual: true)
    }

    mutating func append(_ operation: Operation) { operations.append(operation) }

    subscript(uid: Int64) -> Tensor { tensors[Int(uid) - 1] }

    /// The tensors the caller supplies memory (or a host scalar) for, in uid order.
    var boundaryTensors: [Tensor] { tensors.filter { !$0.isVirtual } }

    static func packedStrides(_ dimensions: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: dimensions.count)
        for i in stride(from: dimensions.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * dimensions[i + 1] }
        return strides
    }

    /// What is wrong with the graph's wiring, or nil: every operand defined before use, every virtual tensor
    /// produced exactly once and consumed, no boundary tensor written twice, dimensions and strides of equal rank.
    var wiringProblem: String? {
        var produced = Set<Int64>()
        for tensor in tensors where tensor.dimensions.count != tensor.strides.count {
            return "\(tensor.name): \(tensor.dimensions.count) dimensions but \(tensor.strides.count) strides"
        }
        for (index, operation) in operations.enumerated() {
            for input in operation.inputs {
                guard Int(input) >= 1, Int(input) <= tensors.count else { return "operation \(index) reads unknown tensor \(input)" }
                if self[input].isVirtual, !produced.contains(input) {
                    return "operation \(index) reads \(self[input].name) before it is computed"
                }
            }
            guard produced.insert(operation.output).inserted else { return "\(self[operation.output].name) is written twice" }
        }
        let consumed = Set(operations.flatMap(\.inputs))
        for tensor in tensors where tensor.isVirtual {
            if !produced.contains(tensor.uid) { return "\(tensor.name) is never computed" }
            if !consumed.contains(tensor.uid) { return "\(tensor.name) is computed but never used" }
        }
        return nil
    }
}
