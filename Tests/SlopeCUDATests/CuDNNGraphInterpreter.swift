@testable import SlopeCUDA

/// Runs a ``CuDNNGraph`` on the host in Double, with the semantics cuDNN documents for each operation: every tensor
/// is a buffer read through its declared dimensions and strides (virtual tensors too, so a reshape is the same
/// buffer seen through other strides); pointwise operands broadcast where a dimension is 1; a reduction sums or
/// maximises over the input positions that map to each output position (a dimension of 1, or a group of heads);
/// a matmul multiplies the last two dimensions, batched over the others, an operand with fewer heads serving each
/// group of heads. Rounding to bf16 is left out: results compare with the CPU backend in float64.
struct CuDNNGraphInterpreter {
    let graph: CuDNNGraph
    /// Buffers by uid; the caller's tensors share buffers by name (e.g. "K" is K's memory).
    private(set) var buffers: [Int64: [Double]] = [:]

    init(_ graph: CuDNNGraph, memory: [String: [Double]], scalars: [String: Double]) {
        self.graph = graph
        for tensor in graph.tensors where !tensor.isVirtual {
            if tensor.isByValue { buffers[tensor.uid] = [scalars[tensor.name]!] } else {
                buffers[tensor.uid] = memory[tensor.name] ?? [Double](repeating: 0, count: Self.span(tensor))
            }
        }
        for tensor in graph.tensors where tensor.isVirtual { buffers[tensor.uid] = [Double](repeating: 0, count: Self.span(tensor)) }
    }

    static func span(_ t: CuDNNGraph.Tensor) -> Int {
        zip(t.dimensions, t.strides).map { Int(($0 - 1) * $1) }.reduce(0, +) + 1
    }

    func value(_ name: String) -> [Double] { buffers[graph.tensors.first { $0.name == name }!.uid]! }

    /// Every index of `dimensions`, row-major.
    static func indices(_ dimensions: [Int64]) -> [[Int]] {
        var result: [[Int]] = [[]]
        for extent in dimensions { result = result.flatMap { prefix in (0..<Int(extent)).map { prefix + [$0] } } }
        return result
    }

    func offset(_ t: CuDNNGraph.Tensor, _ index: [Int]) -> Int { zip(index, t.strides).map { $0 * Int($1) }.reduce(0, +) }

    /// The element of `t` that position `index` of a tensor of `dimensions` reads: broadcast where t has extent 1,
    /// grouped where t has fewer (head h of Hq reads head h / (Hq/Hkv)).
    func read(_ t: CuDNNGraph.Tensor, at index: [Int], of dimensions: [Int64]) -> Double {
        let mapped = zip(zip(index, dimensions), t.dimensions).map { pair, own in own == 1 ? 0 : pair.0 / Int(pair.1 / own) }
        return buffers[t.uid]![offset(t, mapped)]
    }

    mutating func run() {
        for operation in graph.operations {
            let y = graph[operation.output]
            var out = buffers[y.uid]!
            switch operation {
            case let .pointwise(mode, x, b, t, _, axis):
                for index in Self.indices(y.dimensions) {
                    let a = read(graph[x], at: index, of: y.dimensions)
                    let second = b.map { read(graph[$0], at: index, of: y.dimensions) } ?? 0
                    let value: Double
                    switch mode {
                    case .add: value = a + second
                    case .multiply: value = a * second
                    case .divide: value = a / second
                    case .subtract: value = a - second
                    case .exp: value = Foundation_exp(a)
                    case .log: value = Foundation_log(a)
                    case .identity: value = a
                    case .greaterOrEqual: value = a >= second ? 1 : 0
                    case .genIndex: value = Double(index[Int(axis!)])
                    case .binarySelect: value = read(graph[t!], at: index, of: y.dimensions) != 0 ? a : second
                    }
                    out[offset(y, index)] = value
                }
            case let .reduction(mode, x, _):
                let input = graph[x]
                var seen = Set<Int>()
                for index in Self.indices(input.dimensions) {
                    let target = zip(zip(index, input.dimensions), y.dimensions).map { pair, own in own == 1 ? 0 : pair.0 / Int(pair.1 / own) }
                    let at = offset(y, target), value = buffers[input.uid]![offset(input, index)]
                    if seen.insert(at).inserted { out[at] = value } else { out[at] = mode == .add ? out[at] + value : max(out[at], value) }
                }
            case let .matmul(a, b, _):
                let (ta, tb) = (graph[a], graph[b])
                let inner = Int(ta.dimensions[3])
                for index in Self.indices(y.dimensions) {
                    var sum = 0.0
                    for k in 0..<inner {
                        let left = read(ta, at: [index[0], index[1], index[2], k], of: [y.dimensions[0], y.dimensions[1], ta.dimensions[2], ta.dimensions[3]])
                        let right = read(tb, at: [index[0], index[1], k, index[3]], of: [y.dimensions[0], y.dimensions[1], tb.dimensions[2], tb.dimensions[3]])
                        sum += left * right
                    }
                    out[offset(y, index)] = sum
                }
            case let .reshape(x, _):
                out = buffers[x]!
            }
            buffers[y.uid] = out
        }
    }
}

import Foundation
private func Foundation_exp(_ x: Double) -> Double { exp(x) }
private func Foundation_log(_ x: Double) -> Double { log(x) }
