@testable import SlopeCUDA
import SlopeCore
import SlopeTestSupport
import XCTest

/// The cuDNN attention graphs as data: wiring, the layouts they declare over slope's tensors, and the variants
/// (causal or not, grouped-query) — everything about them that can be checked without cuDNN.
final class CuDNNAttentionGraphTests: XCTestCase {
    let causal = AttentionShape(batch: 2, queryLength: 5, queryHeads: 3, headDimension: 8)
    let grouped = AttentionShape(batch: 2, queryLength: 4, keyLength: 6, queryHeads: 4, keyValueHeads: 2, headDimension: 16, causal: false)

    private func modes(_ g: CuDNNGraph) -> [String] {
        g.operations.map { operation in
            switch operation {
            case .matmul: return "matmul"
            case let .pointwise(mode, _, _, _, _, _): return "\(mode)"
            case let .reduction(mode, _, _): return "reduce \(mode)"
            case .reshape: return "reshape"
            }
        }
    }

    private func tensor(_ g: CuDNNGraph, _ name: String) throws -> CuDNNGraph.Tensor {
        try XCTUnwrap(g.tensors.first { $0.name == name }, "no tensor \(name)")
    }

    /// Every element's offset through the declared dimensions and strides is where slope keeps it.
    private func assertAddresses(
        _ t: CuDNNGraph.Tensor, _ expected: ([Int]) -> Int, file: StaticString = #filePath, line: UInt = #line
    ) {
        let dims = t.dimensions.map(Int.init)
        var index = [Int](repeating: 0, count: dims.count)
        var seen = Set<Int>()
        repeat {
            let offset = zip(index, t.strides).map { $0 * Int($1) }.reduce(0, +)
            XCTAssertEqual(offset, expected(index), "\(t.name) at \(index)", file: file, line: line)
            seen.insert(offset)
            var axis = dims.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < dims[axis] { break }
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        } while true
        XCTAssertEqual(seen.count, dims.reduce(1, *), "\(t.name): two elements share memory", file: file, line: line)
    }

    func testForwardIsTheFusedPatternOverSlopeLayouts() throws {
        let g = CuDNNAttentionGraph.forward(causal, dtype: .bfloat16)
        XCTAssertNil(g.wiringProblem)
        XCTAssertEqual(modes(g), [
            "matmul", "multiply", "genIndex", "genIndex", "greaterOrEqual", "binarySelect", "reduce maximum", "subtract", "exp",
            "reduce add", "log", "add", "divide", "matmul",
        ])
        XCTAssertEqual(g.boundaryTensors.map(\.name), ["Q", "K", "V", "O", "Stats", "Scale", "NegativeInfinity"])
        let (b, t, h, d) = (causal.batch, causal.queryLength, causal.queryHeads, causal.headDimension)
        // Q and O: [B·T, H·D] row-major, seen as [B, H, T, D].
        for name in ["Q", "O"] {
            assertAddresses(try tensor(g, name)) { i in ((i[0] * t + i[2]) * h + i[1]) * d + i[3] }
        }
        // K is seen transposed, [B, H, D, T], over the same memory.
        assertAddresses(try tensor(g, "K")) { i in ((i[0] * t + i[3]) * h + i[1]) * d + i[2] }
        // The log-sum-exp is [B·T, H].
        let stats = try tensor(g, "Stats")
        XCTAssertEqual(stats.dimensions, [Int64(b), Int64(h), Int64(t), 1])
        XCTAssertEqual(stats.dataType, .float)
        assertAddresses(stats) { i in (i[0] * t + i[2]) * h + i[1] }
        // cuDNN's own layout, for a cuDNN that refuses slope's: [B, H, T] packed.
        let packed = try tensor(CuDNNAttentionGraph.forward(causal, dtype: .bfloat16, packedStatistics: true), "Stats")
        assertAddresses(packed) { i in (i[0] * h + i[1]) * t + i[2] }
        // The probabilities enter the second product in the operands' precision; the scores stay float32.
        XCTAssertEqual(try tensor(g, "P").dataType, .bfloat16)
        XCTAssertEqual(try tensor(g, "S").dataType, .float)
        XCTAssertTrue(try tensor(g, "Scale").isByValue)
        guard case let .pointwise(.genIndex, _, _, _, _, axis) = g.operations[2] else { return XCTFail("row index first") }
        XCTAssertEqual(axis, 2)
    }

    func testNonCausalHasNoMaskAndBroadcastsSharedHeads() throws {
        let g = CuDNNAttentionGraph.forward(grouped, dtype: .float16)
        XCTAssertNil(g.wiringProblem)
        XCTAssertFalse(modes(g).contains("genIndex"))
        XCTAssertFalse(g.tensors.contains { $0.name == "NegativeInfinity" })
        XCTAssertEqual(try tensor(g, "Q").dataType, .half)
        let (t, hk, d) = (grouped.keyLength, grouped.keyValueHeads, grouped.headDimension)
        XCTAssertEqual(try tensor(g, "V").dimensions, [2, 2, 6, 16])
        assertAddresses(try tensor(g, "V")) { i in ((i[0] * t + i[2]) * hk + i[1]) * d + i[3] }
        XCTAssertEqual(try tensor(g, "S").dimensions, [2, 4, 4, 6])
    }

    func testBackwardRecomputesFromTheLogSumExp() throws {
        let g = CuDNNAttentionGraph.backward(causal, dtype: .bfloat16)
        XCTAssertNil(g.wiringProblem)
        XCTAssertEqual(g.operations.count, 22)
        XCTAssertEqual(Set(g.boundaryTensors.map(\.name)), [
            "Q", "K", "V", "O", "Stats", "dO", "dQ", "dK", "dV", "Scale", "One", "NegativeInfinity", "SoftmaxSum", "dQAccumulator",
        ])
        let (t, h, d) = (causal.queryLength, causal.queryHeads, causal.headDimension)
        // V enters transposed too (dP = dO·Vᵀ); the gradients are in slope's layout.
        assertAddresses(try tensor(g, "V")) { i in ((i[0] * t + i[3]) * h + i[1]) * d + i[2] }
        for name in ["dQ", "dK", "dV", "dO"] {
            assertAddresses(try tensor(g, name)) { i in ((i[0] * t + i[2]) * h + i[1]) * d + i[3] }
        }
        // dQ accumulates in a packed float32 [B, H, T, D] tensor, then is rounded into dQ.
        let accumulator = try tensor(g, "dQAccumulator")
        XCTAssertEqual(accumulator.dataType, .float)
        XCTAssertEqual(accumulator.strides, [Int64(h * t * d), Int64(t * d), Int64(d), 1])
        XCTAssertEqual(CuDNNAttentionGraph.scratchBytes(causal).dQAccumulator, 2 * h * t * d * 4)
        guard case let .pointwise(.identity, x, _, _, y, _) = g.operations.last else { return XCTFail("ends by rounding dQ") }
        XCTAssertEqual([g[x].name, g[y].name], ["dQAccumulator", "dQ"])
        // The mask comes after subtracting the log-sum-exp.
        XCTAssertEqual(Array(modes(g)[3...9]), ["matmul", "multiply", "subtract", "genIndex", "genIndex", "greaterOrEqual", "binarySelect"])
    }

    func testGroupedBackwardSumsEachGroupsGradients() throws {
        let g = CuDNNAttentionGraph.backward(grouped, dtype: .bfloat16)
        XCTAssertNil(g.wiringProblem)
        XCTAssertEqual(g.operations.count, 22 - 4 + 2)  // no mask (4 ops fewer), two group sums
        for name in ["dK", "dV"] {
            let perHead = try tensor(g, "\(name) per query head")
            XCTAssertTrue(perHead.isVirtual)
            XCTAssertEqual(perHead.dimensions, [2, 4, 6, 16])
            let sum = g.operations.first { if case let .reduction(.add, x, _) = $0 { return x == perHead.uid } else { return false } }
            XCTAssertEqual(sum?.output, try tensor(g, name).uid)
        }
    }

    func testWiringProblemsAreFound() {
        var g = CuDNNGraph(name: "broken")
        let x = g.tensor("x", [1, 1, 2, 2], strides: [4, 4, 2, 1], .float)
        let unused = g.intermediate("never read", [1, 1, 2, 2])
        g.append(.pointwise(.exp, x: x, y: unused))
        XCTAssertEqual(g.wiringProblem, "never read is computed but never used")
        var h = CuDNNGraph(name: "early")
        let a = h.tensor("a", [1, 1, 2, 2], strides: [4, 4, 2, 1], .float)
        let later = h.intermediate("later", [1, 1, 2, 2])
        let y = h.tensor("y", [1, 1, 2, 2], strides: [4, 4, 2, 1], .float)
        h.append(.pointwise(.add, x: a, b: later, y: y))
        h.append(.pointwise(.exp, x: a, y: later))
        XCTAssertEqual(h.wiringProblem, "operation 0 reads later before it is computed")
    }

    func testApplicabilityAndVersionGates() {
        XCTAssertTrue(CuDNNAttention.applies(to: causal, dtype: .bfloat16))
        XCTAssertFalse(CuDNNAttention.applies(to: causal, dtype: .float32))
        XCTAssertFalse(CuDNNAttention.applies(to: AttentionShape(batch: 1, queryLength: 8, queryHeads: 2, headDimension: 36), dtype: .bfloat16))
        XCTAssertFalse(CuDNNAttention.applies(to: AttentionShape(batch: 1, queryLength: 8, queryHeads: 2, headDimension: 512), dtype: .bfloat16))
        // Causal decoding with cached keys: cuDNN's mask is aligned at the top left, slope's at the bottom right.
        XCTAssertFalse(CuDNNAttention.applies(to: AttentionShape(batch: 1, queryLength: 1, keyLength: 9, queryHeads: 2, headDimension: 64), dtype: .bfloat16))
        XCTAssertTrue(CuDNNAttention.applies(to: grouped, dtype: .bfloat16))
        XCTAssertNotNil(CuDNNAttention.versionProblem(91_001, causal, backward: false))
        XCTAssertNotNil(CuDNNAttention.versionProblem(91_500, causal, backward: true))
        XCTAssertNil(CuDNNAttention.versionProblem(91_500, causal, backward: false))
        XCTAssertNil(CuDNNAttention.versionProblem(91_500, AttentionShape(batch: 1, queryLength: 256, queryHeads: 2, headDimension: 64), backward: true))
        XCTAssertNil(CuDNNAttention.versionProblem(91_501, causal, backward: true))
        // Chosen automatically at training's lengths only (a plan per length; prompts of every length stay on slope's kernels).
        XCTAssertTrue(CUDABackend.cudnnAttentionByDefault)
        for (length, taken) in [(2048, true), (128, true), (512, true), (100, false), (513, false), (1, false)] {
            XCTAssertEqual(CUDABackend.takesCuDNNAutomatically(AttentionShape(batch: 1, queryLength: length, queryHeads: 2, headDimension: 64)), taken, "\(length)")
        }
    }

    func testStatusNames() {
        XCTAssertEqual(CUDAStatus.name(of: 3001, in: .cudnn), "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN")
        XCTAssertEqual(CUDAStatus.name(of: 3099, in: .cudnn), "CUDNN_STATUS_NOT_SUPPORTED class")
        XCTAssertTrue(CUDAError.callFailed(call: "cudnnBackendFinalize(operationGraph)", library: .cudnn, status: 2000).description
            .contains("cudnnBackendFinalize(operationGraph) failed: CUDNN_STATUS_BAD_PARAM"))
    }
}

/// The attention graphs executed by ``CuDNNGraphInterpreter`` against the CPU backend's attention in float64: what
/// cuDNN computes if it runs each operation as documented — the mask, scale, log-sum-exp layout, transposed views,
/// grouped-query sums and dQ's accumulator — checked without a GPU.
final class CuDNNAttentionGraphSemanticsTests: XCTestCase {
    let cpu = CPUBackend()

    func testGraphsComputeWhatTheCPUBackendComputes() throws {
        let shapes = [
            AttentionShape(batch: 2, queryLength: 5, queryHeads: 3, headDimension: 8),
            AttentionShape(batch: 1, queryLength: 6, queryHeads: 4, keyValueHeads: 2, headDimension: 8),
            AttentionShape(batch: 2, queryLength: 3, keyLength: 7, queryHeads: 4, keyValueHeads: 1, headDimension: 8, causal: false),
        ]
        for (n, s) in shapes.enumerated() {
            let d = s.headDimension
            let q = try randomTensor(cpu, [s.batch * s.queryLength, s.queryHeads * d], dtype: .float64, seed: UInt64(10 * n + 1))
            let k = try randomTensor(cpu, [s.batch * s.keyLength, s.keyValueHeads * d], dtype: .float64, seed: UInt64(10 * n + 2))
            let v = try randomTensor(cpu, [s.batch * s.keyLength, s.keyValueHeads * d], dtype: .float64, seed: UInt64(10 * n + 3))
            let dO = try randomTensor(cpu, [s.batch * s.queryLength, s.queryHeads * d], dtype: .float64, seed: UInt64(10 * n + 4))
            let expected = try cpu.attention(query: q, key: k, value: v, shape: s)
            let gradients = try cpu.attentionBackward(dO, query: q, key: k, value: v, saved: expected, shape: s)
            let scalars = ["Scale": Double(s.scale), "NegativeInfinity": -Double.infinity, "One": 1]

            var forward = CuDNNGraphInterpreter(
                CuDNNAttentionGraph.forward(s, dtype: .bfloat16),
                memory: ["Q": try cpu.doubles(q), "K": try cpu.doubles(k), "V": try cpu.doubles(v)], scalars: scalars)
            forward.run()
            assertClose(forward.value("O"), try cpu.doubles(expected.output), "\(s) O")
            assertClose(forward.value("Stats"), try cpu.doubles(expected.logSumExp), "\(s) log-sum-exp")

            var backward = CuDNNGraphInterpreter(
                CuDNNAttentionGraph.backward(s, dtype: .bfloat16),
                memory: [
                    "Q": try cpu.doubles(q), "K": try cpu.doubles(k), "V": try cpu.doubles(v), "O": try cpu.doubles(expected.output),
                    "Stats": try cpu.doubles(expected.logSumExp), "dO": try cpu.doubles(dO),
                ], scalars: scalars)
            backward.run()
            assertClose(backward.value("dQ"), try cpu.doubles(gradients.query), "\(s) dQ")
            assertClose(backward.value("dK"), try cpu.doubles(gradients.key), "\(s) dK")
            assertClose(backward.value("dV"), try cpu.doubles(gradients.value), "\(s) dV")
        }
    }

    private func assertClose(_ got: [Double], _ expected: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-10, label, file: file, line: line)
    }
}
