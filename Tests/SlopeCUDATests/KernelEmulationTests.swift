import Foundation
@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Kernels whose correctness hinges on block-level cooperation (shared-memory tiles, barriers), run on the CPU:
/// the kernel source is compiled as host C++ with `EmulatedModule.shim` (one OS thread per CUDA thread, a real
/// barrier for `__syncthreads`, function-local statics for `__shared__`, one block at a time) and its output
/// compared with the CPU backend's. This is how CI checks a kernel change before any GPU has run it.
final class KernelEmulationTests: XCTestCase {
    /// The tiled double-pruned-transpose refresh over its three paths (8, 4 and 1 slots per thread), whole and
    /// part 64 × 64 tiles, and patterns whose rows hold 16, 32 and 48 slots per tile row.
    func testTiledTransposeRefreshMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(family: .sparsity, dtype: .float32, kernels: ["gather_transpose_tiled": 8])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 11)
        let cases: [(rows: Int, columns: Int, pattern: NMPattern)] = [
            (80, 112, .twoFour),  // 8 slots per thread, part tiles both ways
            (128, 192, .twoFour),  // 8 slots per thread, whole tiles
            (72, 96, .twoFour),  // Wᵀ rows of 36 slots: 4 per thread
            (72, 96, try NMPattern(n: 1, m: 4)),  // 18 and 24 slots per row: 1 per thread
            (64, 128, try NMPattern(n: 2, m: 8)),  // 16 slots per tile row
            (64, 64, try NMPattern(n: 3, m: 4)),  // 48 slots per tile row: a second early unit per thread
            (72, 96, try NMPattern(n: 3, m: 4)),  // 1 slot per thread, 3072 units: the loop past the early units
        ]
        for (rows, columns, pattern) in cases {
            let dense = try cpu.randomNormal([rows, columns], dtype: .float32, using: &generator)
            let w = try cpu.compress(dense, pattern: pattern, mask: nil)
            let transposed = try cpu.doublePrunedTranspose(of: w)
            try cpu.scaleInPlace(w.values, by: -2)  // new values of W, so the refresh has something to move
            try cpu.refreshDoublePrunedTranspose(transposed, from: w)
            let expected = try cpu.floats(transposed.values)

            let outputs = try module.launch("gather_transpose_tiled", grid: ((columns + 63) / 64, (rows + 63) / 64, 1), [
                .inputArray(try cpu.floats(w.values)), .inputArray(try cpu.uint8s(w.indices)), .inputArray(try cpu.uint8s(transposed.indices)),
                .output(bytes: expected.count * 4), .int64(rows), .int64(columns), .int32(pattern.n), .int32(pattern.m),
            ])
            let actual: [Float] = outputs[3]!.elements()
            let mismatches = zip(actual, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(mismatches, 0, "\(rows)×\(columns) \(pattern): \(mismatches) of \(expected.count) slots differ")
        }
    }

    /// The dW path's gather into the compressed gradient (16 dense values and 8 indices per thread), adding to
    /// what is there, against the CPU backend; float32 and bf16.
    func testPackedGradientGatherMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 12)
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .sparsity, dtype: dtype, kernels: ["gather_compressed_2_4": 5])
            let (rows, columns) = (24, 64)
            let w = try cpu.compress(cpu.randomNormal([rows, columns], dtype: dtype, using: &generator), pattern: .twoFour, mask: nil)
            let gradient = try cpu.randomNormal([rows, columns], dtype: dtype, using: &generator)
            let before = try cpu.randomNormal(w.values.shape, dtype: dtype, using: &generator)
            let expected = try cpu.cast(before, to: dtype)
            try cpu.accumulateGathered(gradient, layout: w, into: expected)

            let quads = rows * columns / 16
            let outputs = try module.launch("gather_compressed_2_4", grid: ((quads + 255) / 256, 1, 1), [
                .input(try Self.raw(gradient, cpu)), .inputArray(try cpu.uint8s(w.indices)), .readWrite(try Self.raw(before, cpu)), .int64(quads), .int32(1),
            ])
            XCTAssertEqual(outputs[2], try Self.raw(expected, cpu), "\(dtype): the gathered sums differ")
        }
    }

    /// Bias gradients: the two-pass column sum (a shared-memory reduction over 8 row lanes, then the chunks in
    /// order), accumulating into the existing values, with the chunking the backend uses.
    func testTwoPassColumnSumsMatchTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 13)
        let module = try EmulatedModule(family: .reductions, dtype: .float32, kernels: ["column_sums_partial": 5, "column_sum_partials": 5])
        for (rows, columns) in [(300, 72), (1, 8), (129, 264)] {
            let x = try cpu.randomNormal([rows, columns], dtype: .float32, using: &generator)
            let start = try cpu.randomNormal([columns], dtype: .float32, using: &generator)
            let expected = try cpu.add(start, cpu.sumRows(x))
            let chunks = CUDABackend.columnSumChunks(rows: rows)
            let partial = try module.launch("column_sums_partial", grid: ((columns + 127) / 128, chunks.count, 1), [
                .inputArray(try cpu.floats(x)), .output(bytes: chunks.count * columns * 4), .int64(rows), .int64(columns), .int64(chunks.rows),
            ])[1]!
            let sums = try module.launch("column_sum_partials", grid: ((columns + 255) / 256, 1, 1), [
                .input(partial), .readWriteArray(try cpu.floats(start)), .int64(chunks.count), .int64(columns), .int32(1),
            ])[1]!
            let actual: [Float] = sums.elements()
            for (a, e) in zip(actual, try cpu.floats(expected)) {
                XCTAssertEqual(a, e, accuracy: 1e-4 * max(1, abs(e)), "\(rows)×\(columns)")
            }
        }
    }

    /// A block reduction through warp shuffles (the gradient norm's sum of squares), with the shuffles emulated
    /// lane by lane: the block partials add up to Σx².
    func testShuffleReductionsAddUp() throws {
        let module = try EmulatedModule(family: .reductions, dtype: .float32, kernels: ["reduce_partials": 4])
        var generator = SeededGenerator(seed: 14)
        let values = (0..<5000).map { _ in Float.random(in: -2...2, using: &generator) }
        let blocks = CUDABackend.reductionBlocks(values.count)
        let partials: [Float] = try module.launch("reduce_partials", grid: (blocks, 1, 1), [
            .inputArray(values), .int64(values.count), .output(bytes: blocks * 4), .int32(1),
        ])[2]!.elements()
        let expected = values.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(partials.reduce(0.0) { $0 + Double($1) }, expected, accuracy: 1e-4 * expected)
    }

    /// The fused AdamW step, packed part and tail (1003 elements: not a whole number of packs), float32 and
    /// bf16 parameters, with a gradient scale, against the CPU backend.
    func testPackedAdamWMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 15)
        let step = AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: 3, gradientScale: 0.5)
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .optimizer, dtype: dtype, kernels: ["adamw": 13])
            let n = 1003
            let parameter = try cpu.randomNormal([n], dtype: dtype, using: &generator)
            let gradient = try cpu.randomNormal([n], dtype: dtype, using: &generator)
            let m = try cpu.randomNormal([n], dtype: .float32, using: &generator)
            let v = try cpu.cast(cpu.multiply(m, m), to: .float32)
            let start = (parameter: try Self.raw(parameter, cpu), m: try cpu.floats(m), v: try cpu.floats(v))
            try cpu.adamW(parameter: parameter, gradient: gradient, moment1: m, moment2: v, step: step)

            let corrections = (Float(1 - pow(Double(step.beta1), Double(step.step))), Float(1 - pow(Double(step.beta2), Double(step.step))))
            let out = try module.launch("adamw", grid: ((n + 255) / 256, 1, 1), [
                .readWrite(start.parameter), .input(try Self.raw(gradient, cpu)), .readWriteArray(start.m), .readWriteArray(start.v), .int64(n),
                .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon), .float(step.weightDecay),
                .float(corrections.0), .float(corrections.1), .float(step.gradientScale),
            ])
            let updated = try cpu.floats(parameter)
            let emulated: [Float] = dtype == .float32
                ? out[0]!.elements() : (out[0]!.elements() as [UInt16]).map { Float(bitPattern: UInt32($0) << 16) }
            for (name, actual, expected) in [("parameter", emulated, updated), ("m", out[2]!.elements(), try cpu.floats(m)),
                                             ("v", out[3]!.elements(), try cpu.floats(v))] {
                let worst = zip(actual, expected).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, dtype == .float32 ? 1e-5 : 8e-3, "\(dtype) \(name)")
            }
        }
    }

    /// The tensor-core attention kernels (forward, δ, dK/dV, dQ), with `mma.sync`, `ldmatrix` and `cp.async`
    /// emulated lane by lane from PTX's fragment layouts (`tensorCoreHelpers`), against the CPU backend: head
    /// dimensions 64 and 128, grouped-query heads, causal and not, sequences that end inside a tile, queries
    /// that are the last of more keys; the two-kernel and the one-kernel backward.
    func testTensorCoreAttentionMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(
            source: Self.withEmulatedTensorCores(KernelFamily.attentionTensorCore.translationUnit(for: .bfloat16)),
            kernels: [64, 128].reduce(into: [:]) { kernels, d in
                kernels["attention_forward_tc_d\(d)"] = 12
                kernels["attention_delta_tc_d\(d)"] = 4
                kernels["attention_backward_kv_tc_d\(d)"] = 15
                kernels["attention_backward_q_tc_d\(d)"] = 14
                kernels["attention_backward_tc_d\(d)"] = 16
            })
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 16)
        for (d, causal, batch, queries, keys) in [(64, true, 1, 72, 72), (128, false, 1, 72, 72), (64, true, 2, 40, 72)] {
            let s = AttentionShape(
                batch: batch, queryLength: queries, keyLength: keys, queryHeads: 4, keyValueHeads: 2, headDimension: d, causal: causal)
            let rows = s.batch * s.queryLength, keyRows = s.batch * s.keyLength
            let q = try cpu.randomNormal([rows, s.queryHeads * d], dtype: .bfloat16, using: &generator)
            let k = try cpu.randomNormal([keyRows, s.keyValueHeads * d], dtype: .bfloat16, using: &generator)
            let v = try cpu.randomNormal([keyRows, s.keyValueHeads * d], dtype: .bfloat16, using: &generator)
            let dout = try cpu.randomNormal([rows, s.queryHeads * d], dtype: .bfloat16, using: &generator)
            let expected = try cpu.attention(query: q, key: k, value: v, shape: s)
            let gradients = try cpu.attentionBackward(dout, query: q, key: k, value: v, saved: expected, shape: s)

            let sizes: [EmulatedModule.Argument] = [
                .int32(s.batch), .int32(s.queryLength), .int32(s.keyLength), .int32(s.queryHeads), .int32(s.keyValueHeads),
                .int32(s.causal ? 1 : 0), .float(s.scale),
            ]
            let (qBytes, kBytes, vBytes, dBytes) = (try Self.raw(q, cpu), try Self.raw(k, cpu), try Self.raw(v, cpu), try Self.raw(dout, cpu))
            let blockRows = KernelSources.tensorCoreForwardBlockRows[d]!
            let out = try module.launch("attention_forward_tc_d\(d)", grid: ((s.queryLength + blockRows - 1) / blockRows, s.queryHeads, s.batch), block: 128, [
                .input(qBytes), .input(kBytes), .input(vBytes), .output(bytes: qBytes.count), .output(bytes: rows * s.queryHeads * 4),
            ] + sizes)
            let (o, lse) = (out[3]!, out[4]!)
            try Self.assertClose(Self.bf16(o), try cpu.floats(expected.output), tolerance: 2e-2, "forward O, d = \(d)")
            try Self.assertClose(lse.elements(), try cpu.floats(expected.logSumExp), tolerance: 1e-3, "forward log-sum-exp, d = \(d)")

            let deltas = try module.launch("attention_delta_tc_d\(d)", grid: ((rows * s.queryHeads * d / 8 + 255) / 256, 1, 1), [
                .input(dBytes), .input(o), .output(bytes: rows * s.queryHeads * 4), .int64(rows * s.queryHeads),
            ])[2]!
            let saved: [EmulatedModule.Argument] = [.input(qBytes), .input(kBytes), .input(vBytes), .input(dBytes), .input(lse), .input(deltas)]
            let kv = try module.launch("attention_backward_kv_tc_d\(d)", grid: ((s.keyLength + 63) / 64, s.keyValueHeads, s.batch), block: 128,
                                         saved + [.output(bytes: kBytes.count), .output(bytes: vBytes.count)] + sizes)
            let dq = try module.launch("attention_backward_q_tc_d\(d)", grid: ((s.queryLength + 63) / 64, s.queryHeads, s.batch), block: 128,
                                      saved + [.output(bytes: qBytes.count)] + sizes)[6]!
            try Self.assertClose(Self.bf16(dq), try cpu.floats(gradients.query), tolerance: 3e-2, "dQ, d = \(d)")
            try Self.assertClose(Self.bf16(kv[6]!), try cpu.floats(gradients.key), tolerance: 3e-2, "dK, d = \(d)")
            try Self.assertClose(Self.bf16(kv[7]!), try cpu.floats(gradients.value), tolerance: 3e-2, "dV, d = \(d)")
            // The one-kernel backward: dQ through float32 atomics, dK and dV as above.
            let single = try module.launch("attention_backward_tc_d\(d)", grid: ((s.keyLength + 63) / 64, s.keyValueHeads, s.batch), block: 128,
                                           saved + [.readWriteArray([Float](repeating: 0, count: rows * s.queryHeads * d)),
                                                    .output(bytes: kBytes.count), .output(bytes: vBytes.count)] + sizes)
            try Self.assertClose(single[6]!.elements(), try cpu.floats(gradients.query), tolerance: 3e-2, "one-kernel dQ, d = \(d)")
            try Self.assertClose(Self.bf16(single[7]!), try cpu.floats(gradients.key), tolerance: 3e-2, "one-kernel dK, d = \(d)")
            try Self.assertClose(Self.bf16(single[8]!), try cpu.floats(gradients.value), tolerance: 3e-2, "one-kernel dV, d = \(d)")
        }
    }

    /// `|actual − expected| ≤ tolerance · max(1, |expected|)` everywhere (bf16 results against float ones).
    static func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String) throws {
        XCTAssertEqual(actual.count, expected.count, what)
        let worst = zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst relative error \(worst)")
    }

    static func bf16(_ data: Data) -> [Float] { (data.elements() as [UInt16]).map { Float(bitPattern: UInt32($0) << 16) } }

    /// The attention family with its PTX helpers (between the "PTX helpers" markers) swapped for host C++.
    static func withEmulatedTensorCores(_ source: String) throws -> String {
        let begin = try XCTUnwrap(source.range(of: "// PTX helpers: begin"), "the kernel source lost its helper markers")
        let end = try XCTUnwrap(source.range(of: "// PTX helpers: end"), "the kernel source lost its helper markers")
        return String(source[..<begin.lowerBound]) + tensorCoreHelpers + String(source[end.upperBound...])
    }

    /// bf16 only. Fragment layouts from PTX's ISA (warp-level matrix fragments for mma.m16n8k16 and ldmatrix):
    /// with g = lane / 4 and t = lane % 4, A's registers hold rows g, g + 8, g, g + 8 and columns 2t, 2t, 2t + 8,
    /// 2t + 8 (two consecutive elements each, the lower in the low half); B's hold rows 2t and 2t + 8 of
    /// column g; C's hold row g (c0, c1) and g + 8 (c2, c3), columns 2t, 2t + 1. ldmatrix: lane l names row l % 8
    /// of matrix l / 8; register j of lane l holds row l / 4, columns 2(l % 4) and 2(l % 4) + 1 of matrix j
    /// (transposed: rows 2(l % 4) and 2(l % 4) + 1, column l / 4). cp.async copies at once.
    static let tensorCoreHelpers = #"""
        static inline unsigned pack2(float lo, float hi) {
            return (unsigned)from_float<bf16>(lo).bits | ((unsigned)from_float<bf16>(hi).bits << 16);
        }
        static inline float low_half(unsigned w) { return __uint_as_float(w << 16); }
        static inline float high_half(unsigned w) { return __uint_as_float(w & 0xFFFF0000u); }
        static inline float half_of(unsigned w, int which) { return which ? high_half(w) : low_half(w); }
        static unsigned emulated_a[32][32][4], emulated_b[32][32][2];
        static inline void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            for (int j = 0; j < 4; ++j) emulated_a[warp][lane][j] = a[j];
            emulated_b[warp][lane][0] = b0;
            emulated_b[warp][lane][1] = b1;
            emulated_warp_sync();
            int g = lane >> 2, t = lane & 3;
            for (int i = 0; i < 4; ++i) {
                int row = g + (i >= 2 ? 8 : 0), column = 2 * t + (i & 1);
                float sum = 0.0f;
                for (int k = 0; k < 16; ++k) {
                    float x = half_of(emulated_a[warp][(row % 8) * 4 + (k % 8) / 2][row / 8 + 2 * (k / 8)], k & 1);
                    float y = half_of(emulated_b[warp][column * 4 + (k % 8) / 2][k / 8], k & 1);
                    sum += x * y;
                }
                d[i] += sum;
            }
            emulated_warp_sync();
        }
        static inline unsigned shared_address(const void*) { return 0; }
        static inline void copy16_async(void* shared, const void* global, bool valid) {
            if (valid) std::memcpy(shared, global, 16); else std::memset(shared, 0, 16);
        }
        static inline void commit_copies() {}
        template <int PENDING> static inline void wait_copies() {}
        static const u16* emulated_rows[32][32];
        static inline void load_matrices(unsigned* r, const u16* p) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            emulated_rows[warp][lane] = p;
            emulated_warp_sync();
            for (int j = 0; j < 4; ++j) {
                const u16* row = emulated_rows[warp][j * 8 + lane / 4];
                r[j] = (unsigned)row[2 * (lane % 4)] | ((unsigned)row[2 * (lane % 4) + 1] << 16);
            }
            emulated_warp_sync();
        }
        static inline void load_matrices_transposed(unsigned* r, const u16* p) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            emulated_rows[warp][lane] = p;
            emulated_warp_sync();
            for (int j = 0; j < 4; ++j) {
                const u16* first = emulated_rows[warp][j * 8 + 2 * (lane % 4)];
                const u16* second = emulated_rows[warp][j * 8 + 2 * (lane % 4) + 1];
                r[j] = (unsigned)first[lane / 4] | ((unsigned)second[lane / 4] << 16);
            }
            emulated_warp_sync();
        }
        static inline float exp2_fast(float x) { return exp2f(x); }
        """#

    /// A CPU tensor's bytes as stored (bf16 as its 16-bit patterns).
    static func raw(_ tensor: Tensor, _ cpu: CPUBackend) throws -> Data {
        let storage = try XCTUnwrap(tensor.storage as? HostStorage)
        return Data(bytes: storage.pointer, count: tensor.byteCount)
    }

    /// The emulation can fail: a kernel that skips its barrier reads a tile other threads have not written
    /// (threads run one after another here, so the race is certain to show).
    func testAMissingBarrierIsCaught() throws {
        let racy = """
            extern "C" __global__ void reverse(const float* x, float* y) {
                __shared__ float tile[256];
                tile[threadIdx.x] = x[threadIdx.x];
                y[threadIdx.x] = tile[255 - threadIdx.x];
            }
            """
        let module = try EmulatedModule(source: racy, kernels: ["reverse": 2], threadsStartTogether: false)
        let x = (0..<256).map(Float.init)
        let y: [Float] = try module.launch("reverse", grid: (1, 1, 1), [.inputArray(x), .output(bytes: 256 * 4)])[1]!.elements()
        XCTAssertNotEqual(y, x.reversed(), "threads started one after another must see unwritten slots")
        let fixed = try EmulatedModule(source: racy.replacingOccurrences(of: "y[threadIdx.x] =", with: "__syncthreads(); y[threadIdx.x] ="),
                                       kernels: ["reverse": 2])
        XCTAssertEqual(try fixed.launch("reverse", grid: (1, 1, 1), [.inputArray(x), .output(bytes: 256 * 4)])[1]!.elements(), Array(x.reversed()))
    }
}

/// Kernels compiled as host C++ (clang++, or clang with libstdc++) with `EmulatedModule.shim`, each callable
/// like a launch: arguments in the kernel's order, buffers passed as files to a small runner.
final class EmulatedModule {
    enum Argument {
        case input(Data)
        /// A buffer the kernel writes; it starts as 0xFF bytes (a NaN in float and bf16), so unwritten places show.
        case output(bytes: Int)
        /// A buffer the kernel reads and writes.
        case readWrite(Data)
        case int64(Int)
        case int32(Int)
        case float(Float)

        static func inputArray<E>(_ values: [E]) -> Argument { .input(values.withUnsafeBytes { Data($0) }) }
        static func readWriteArray<E>(_ values: [E]) -> Argument { .readWrite(values.withUnsafeBytes { Data($0) }) }
    }

    struct EmulationError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    let folder: URL
    let binary: URL

    /// `kernels` (name → number of arguments) of `family`'s translation unit for `dtype`.
    convenience init(family: KernelFamily, dtype: DType, kernels: [String: Int]) throws {
        try self.init(source: family.translationUnit(for: dtype), kernels: kernels)
    }

    /// With `threadsStartTogether` false, each emulated thread runs to completion before the next starts (no
    /// barrier can be honoured then; only for showing that a missing barrier is caught).
    init(source: String, kernels: [String: Int], threadsStartTogether: Bool = true) throws {
        guard let clang = KernelSyntaxTests.executable("clang++") ?? KernelSyntaxTests.executable("clang") else {
            throw XCTSkip("no clang on PATH: kernels were not emulated")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-kernel-emulation-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("kernel.cpp")
        binary = folder.appendingPathComponent("kernel")
        let text = Self.shim(sequential: !threadsStartTogether) + "\n" + source + "\n" + Self.runner(kernels: kernels)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let (status, output) = try KernelSyntaxTests.run(clang, [
            "-x", "c++", "-std=c++17", "-O1", "-pthread", "-w", file.path, "-o", binary.path, "-lstdc++", "-lm",
        ])
        guard status == 0 else { throw EmulationError(message: "the kernels do not compile as host C++:\n\(output.prefix(4000))") }
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    /// Runs kernel `name` over `grid` blocks of `block` threads; returns the final contents of every output and
    /// read-write buffer, by argument index.
    func launch(_ name: String, grid: (Int, Int, Int), block: Int = 256, _ arguments: [Argument]) throws -> [Int: Data] {
        var words = [name, "\(grid.0)", "\(grid.1)", "\(grid.2)", "\(block)"]
        var written: [Int] = []
        for (index, argument) in arguments.enumerated() {
            let path = folder.appendingPathComponent("a\(index)").path
            switch argument {
            case .input(let data):
                try data.write(to: URL(fileURLWithPath: path))
                words.append("in:" + path)
            case .readWrite(let data):
                try data.write(to: URL(fileURLWithPath: path))
                words.append("inout:" + path)
                written.append(index)
            case .output(let bytes):
                words.append("out:\(path):\(bytes)")
                written.append(index)
            case .int64(let value), .int32(let value): words.append("i:\(value)")
            case .float(let value): words.append("f:\(value.bitPattern)")
            }
        }
        let (status, printed) = try KernelSyntaxTests.run(binary, words)
        guard status == 0 else { throw EmulationError(message: "the emulated kernel exited with \(status): \(printed.prefix(2000))") }
        var results: [Int: Data] = [:]
        for index in written { results[index] = try Data(contentsOf: folder.appendingPathComponent("a\(index)")) }
        return results
    }

    /// `main`: argv = kernel name, grid x y z, block, then one word per argument (in:PATH, inout:PATH,
    /// out:PATH:BYTES, i:INT, f:FLOAT-BITS). Every buffer gets its own 64-byte-aligned allocation (the GPU's are 256-byte
    /// aligned, and packed loads rely on alignment). `Arg` converts to whatever the kernel's parameter is.
    static func runner(kernels: [String: Int]) -> String {
        let dispatch = kernels.sorted { $0.key < $1.key }.map { name, arity in
            "if (name == \"\(name)\" && args.size() == \(arity)) emulate_launch(grid, block, [&] { \(name)("
                + (0..<arity).map { "args[\($0)]" }.joined(separator: ", ") + "); });"
        }.joined(separator: "\n        else ") + "\n        else { std::fprintf(stderr, \"unknown kernel or argument count\\n\"); return 2; }"
        return #"""
        struct Arg {
            void* p = nullptr; long long i = 0; float f = 0; std::string path; long long bytes = 0; bool written = false;
            template <typename U> operator U*() const { return (U*)p; }
            operator long long() const { return i; }
            operator int() const { return (int)i; }
            operator unsigned() const { return (unsigned)i; }
            operator unsigned long long() const { return (unsigned long long)i; }
            operator float() const { return f; }
        };
        int main(int argc, char** argv) {
            std::string name = argv[1];
            dim3 grid{(unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4])};
            unsigned block = (unsigned)atoi(argv[5]);
            std::vector<Arg> args(argc - 6);
            for (int k = 6; k < argc; ++k) {
                std::string word = argv[k];
                Arg& a = args[k - 6];
                if (word.rfind("i:", 0) == 0) { a.i = atoll(word.c_str() + 2); continue; }
                if (word.rfind("f:", 0) == 0) { a.f = __uint_as_float((unsigned)strtoul(word.c_str() + 2, nullptr, 10)); continue; }
                size_t colon = word.find(':');
                std::string kind = word.substr(0, colon), rest = word.substr(colon + 1);
                if (kind == "out") {
                    size_t last = rest.rfind(':');
                    a.path = rest.substr(0, last);
                    a.bytes = atoll(rest.c_str() + last + 1);
                    a.p = aligned_alloc(64, ((a.bytes + 63) / 64) * 64 + 64);
                    std::memset(a.p, 0xFF, a.bytes);
                } else {
                    a.path = rest;
                    std::vector<char> data = read_file(rest.c_str());
                    a.bytes = (long long)data.size();
                    a.p = aligned_copy(data);
                }
                a.written = kind != "in";
            }
            \#(dispatch)
            for (Arg& a : args) if (a.written) write_file(a.path.c_str(), a.p, a.bytes);
            return 0;
        }
        """#
    }

    /// What NVRTC provides implicitly, as host C++: CUDA's qualifiers; thread and block indices per OS thread;
    /// `__syncthreads` as a barrier over the block's threads; warp shuffles as an exchange among the warp's 32
    /// threads between two barriers of that warp; atomics as host atomics; the intrinsics the prelude uses.
    /// Warp-synchronous code without shuffles and tensor-core assembly cannot be emulated this way.
    static func shim(sequential: Bool) -> String {
        #"""
        #include <atomic>
        #include <cmath>
        #include <condition_variable>
        #include <cstdio>
        #include <cstdlib>
        #include <cstring>
        #include <fstream>
        #include <iterator>
        #include <memory>
        #include <mutex>
        #include <string>
        #include <thread>
        #include <vector>
        #define __global__
        #define __device__
        #define __host__
        #define __forceinline__ inline
        #define __shared__ static
        #define __align__(n) __attribute__((aligned(n)))
        #define __launch_bounds__(...)
        #define asm(...) ((void)0)
        #define DYNAMIC_SHARED(name) static __attribute__((aligned(16))) unsigned char name[232448]
        struct dim3 { unsigned x = 1, y = 1, z = 1; };
        thread_local dim3 threadIdx, blockIdx;
        dim3 blockDim, gridDim;
        struct alignas(16) uint4 { unsigned x, y, z, w; };
        struct alignas(16) float4 { float x, y, z, w; };
        inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
        inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
        inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
        inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
        inline float __expf(float x) { return std::exp(x); }
        inline float __logf(float x) { return std::log(x); }
        inline int __popc(unsigned x) { return __builtin_popcount(x); }
        using std::isnan; using std::isinf; using std::isfinite;
        inline int min(int a, int b) { return a < b ? a : b; }
        inline int max(int a, int b) { return a > b ? a : b; }
        inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
        inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
        inline long long min(long long a, long long b) { return a < b ? a : b; }
        inline long long max(long long a, long long b) { return a > b ? a : b; }

        struct EmulatedBarrier {
            std::mutex mutex; std::condition_variable released; unsigned count, waiting = 0; unsigned long long generation = 0;
            explicit EmulatedBarrier(unsigned count) : count(count) {}
            void wait() {
                std::unique_lock<std::mutex> lock(mutex);
                unsigned long long mine = generation;
                if (++waiting == count) { waiting = 0; ++generation; released.notify_all(); return; }
                released.wait(lock, [&] { return generation != mine; });
            }
        };
        static EmulatedBarrier* emulated_block_barrier = nullptr;
        static std::vector<std::unique_ptr<EmulatedBarrier>> emulated_warp_barriers;
        static unsigned char emulated_exchange[32][32][8];
        static bool emulated_sequential = false;

        void __syncthreads() { if (emulated_block_barrier) emulated_block_barrier->wait(); }
        int __syncthreads_or(int predicate) {
            static std::atomic<int> any{0};
            __syncthreads();  // the previous call's readers are done
            if (predicate) any.store(1);
            __syncthreads();
            int result = any.load();
            __syncthreads();
            if (threadIdx.x == 0) any.store(0);  // before anyone passes the next call's first barrier
            return result;
        }

        // All 32 lanes of the calling thread's warp meet here (the emulated tensor-core helpers use it).
        inline void emulated_warp_sync() {
            if (emulated_sequential) { std::fprintf(stderr, "warp-wide operations need threads that run together\n"); std::abort(); }
            emulated_warp_barriers[threadIdx.x >> 5]->wait();
        }
        template <typename V, typename F> V emulated_shuffle(V v, F source_lane) {
            if (emulated_sequential) { std::fprintf(stderr, "warp shuffles need threads that run together\n"); std::abort(); }
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            std::memcpy(emulated_exchange[warp][lane], &v, sizeof(V));
            emulated_warp_barriers[warp]->wait();
            V result;
            std::memcpy(&result, emulated_exchange[warp][source_lane(lane) & 31], sizeof(V));
            emulated_warp_barriers[warp]->wait();
            return result;
        }
        template <typename V> V __shfl_xor_sync(unsigned, V v, int mask) { return emulated_shuffle(v, [&](int lane) { return lane ^ mask; }); }
        template <typename V> V __shfl_sync(unsigned, V v, int source) { return emulated_shuffle(v, [&](int) { return source; }); }
        template <typename V> V __shfl_down_sync(unsigned, V v, unsigned delta) {
            return emulated_shuffle(v, [&](int lane) { return lane + (int)delta < 32 ? lane + (int)delta : lane; });
        }

        template <typename V> V atomicAdd(V* p, V v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
        inline float atomicAdd(float* p, float v) {
            float old = *p, next = old + v;
            while (!__atomic_compare_exchange(p, &old, &next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) next = old + v;
            return old;
        }
        template <typename V> V atomicOr(V* p, V v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
        template <typename V> V atomicExch(V* p, V v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
        template <typename V> V atomicMax(V* p, V v) {
            V old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
            while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
            return old;
        }
        template <typename V> V atomicMin(V* p, V v) {
            V old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
            while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
            return old;
        }

        // Runs body as every thread of every block of grid, one block at a time.
        template <typename F> void emulate_launch(dim3 grid, unsigned threads, F body) {
            gridDim = grid; blockDim = dim3{threads, 1, 1};
            emulated_sequential = \#(sequential ? "true" : "false");
            for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
                EmulatedBarrier barrier(threads);
                emulated_block_barrier = emulated_sequential ? nullptr : &barrier;
                emulated_warp_barriers.clear();
                for (unsigned w = 0; w < (threads + 31) / 32; ++w)
                    emulated_warp_barriers.emplace_back(new EmulatedBarrier(w == threads / 32 ? threads % 32 : 32));
                std::vector<std::thread> block;
                for (unsigned t = 0; t < threads; ++t) {
                    block.emplace_back([&, t] { threadIdx = dim3{t, 0, 0}; blockIdx = dim3{x, y, z}; body(); });
                    if (emulated_sequential) block.back().join();
                }
                for (auto& thread : block) if (thread.joinable()) thread.join();
            }
        }

        static std::vector<char> read_file(const char* name) {
            std::ifstream file(name, std::ios::binary);
            if (!file) { std::fprintf(stderr, "cannot read %s\n", name); std::exit(2); }
            return std::vector<char>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
        }
        static void write_file(const char* name, const void* data, long long bytes) {
            std::ofstream file(name, std::ios::binary);
            file.write((const char*)data, bytes);
        }
        // A 64-byte-aligned copy (the GPU's allocations are at least 256-byte aligned; packed loads rely on it).
        static void* aligned_copy(const std::vector<char>& bytes) {
            void* p = aligned_alloc(64, ((bytes.size() + 63) / 64) * 64 + 64);
            std::memcpy(p, bytes.data(), bytes.size());
            return p;
        }
        """#
    }
}

extension Data {
    /// The bytes as an array of `E` (a kernel's output buffer).
    func elements<E>() -> [E] { withUnsafeBytes { Array($0.bindMemory(to: E.self)) } }
}
