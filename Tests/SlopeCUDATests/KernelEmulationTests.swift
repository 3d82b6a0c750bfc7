import Foundation
@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Kernels whose correctness hinges on block and warp cooperation (shared-memory tiles, barriers, shuffles,
/// tensor-core fragments), run on the CPU through `EmulatedModule` and compared with the CPU backend. This is how
/// CI checks a kernel change before any GPU has run it.
final class KernelEmulationTests: XCTestCase {
    /// The tiled double-pruned-transpose refresh over its three paths (8, 4 and 1 slots per thread), whole and
    /// part 64 × 64 tiles, and patterns whose rows hold 16, 32 and 48 slots per tile row; indices one per byte
    /// and, where m ≤ 4, packed at 2 bits (W's, Wᵀ's or both), as the GPU keeps them.
    func testTiledTransposeRefreshMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(family: .sparsity, dtype: .float32, kernels: ["gather_transpose_tiled": 10, "gather_transpose": 10])
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

            let (wIndices, tIndices) = (try cpu.uint8s(w.indices), try cpu.uint8s(transposed.indices))
            let packings: [(w: Int, t: Int)] = pattern.m <= 4 ? [(8, 8), (2, 2), (2, 8), (8, 2)] : [(8, 8)]
            for kernel in ["gather_transpose_tiled", "gather_transpose"] {
                for bits in packings {
                    let grid = kernel == "gather_transpose" ? ((expected.count + 255) / 256, 1, 1) : ((columns + 63) / 64, (rows + 63) / 64, 1)
                    let outputs = try module.launch(kernel, grid: grid, [
                        .inputArray(try cpu.floats(w.values)),
                        .inputArray(bits.w == 2 ? Self.packedTwoBit(wIndices) : wIndices), .inputArray(bits.t == 2 ? Self.packedTwoBit(tIndices) : tIndices),
                        .output(bytes: expected.count * 4), .int64(rows), .int64(columns), .int32(pattern.n), .int32(pattern.m),
                        .int32(bits.w), .int32(bits.t),
                    ])
                    let actual: [Float] = outputs[3]!.elements()
                    let mismatches = zip(actual, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                    XCTAssertEqual(mismatches, 0, "\(kernel) \(rows)×\(columns) \(pattern), index bits \(bits): \(mismatches) of \(expected.count) slots differ")
                }
            }
        }
    }

    /// Slot indices four to a byte, as `pack_slot_indices` writes them: slot s in bits 2·(s % 4) of byte s / 4.
    static func packedTwoBit(_ indices: [UInt8]) -> [UInt8] {
        stride(from: 0, to: indices.count, by: 4).map { start in
            indices[start..<min(start + 4, indices.count)].enumerated().reduce(UInt8(0)) { $0 | ($1.element << (2 * $1.offset)) }
        }
    }

    /// Packing the slot indices to 2 bits and back is exact (also for a count that is not a multiple of 4), and
    /// the kernels that read indices one slot at a time (decompress, the mask, the gather into compressed values)
    /// give the same results from the packed form, for 1:4, 2:4 and 3:4.
    func testPackedSlotIndicesRoundTripAndReadAlike() throws {
        let module = try EmulatedModule(family: .sparsity, dtype: .float32, kernels: [
            "pack_slot_indices": 3, "unpack_slot_indices": 3, "decompress": 8, "slot_mask": 7, "gather_compressed": 9,
        ])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 16)
        let odd: [UInt8] = (0..<23).map { UInt8(($0 * 7 + 3) % 4) }
        let packedOdd = try module.launch("pack_slot_indices", grid: (1, 1, 1), [.inputArray(odd), .output(bytes: 6), .int64(odd.count)])[1]!
        XCTAssertEqual([UInt8](packedOdd), Self.packedTwoBit(odd), "the kernel packs as the reference does")
        let unpacked = try module.launch("unpack_slot_indices", grid: (1, 1, 1), [.input(packedOdd), .output(bytes: odd.count), .int64(odd.count)])[1]!
        XCTAssertEqual([UInt8](unpacked), odd, "unpacking gives the indices back")

        for pattern in [try NMPattern(n: 1, m: 4), .twoFour, try NMPattern(n: 3, m: 4)] {
            let (rows, columns) = (12, 40)
            let w = try cpu.compress(cpu.randomNormal([rows, columns], dtype: .float32, using: &generator), pattern: pattern, mask: nil)
            let packed = Self.packedTwoBit(try cpu.uint8s(w.indices))
            let shape: [EmulatedModule.Argument] = [.int64(rows), .int64(columns), .int32(pattern.n), .int32(pattern.m)]
            let slots = w.values.count, grid = ((slots + 255) / 256, 1, 1)
            let dense: [Float] = try module.launch("decompress", grid: grid, [
                .inputArray(try cpu.floats(w.values)), .inputArray(packed), .readWriteArray([Float](repeating: 0, count: rows * columns)),
            ] + shape + [.int32(2)])[2]!.elements()
            XCTAssertEqual(dense, try cpu.floats(cpu.decompress(w)), "\(pattern): decompress from packed indices")
            let mask = try module.launch("slot_mask", grid: grid, [
                .inputArray(packed), .readWriteArray([UInt8](repeating: 0, count: rows * columns)),
            ] + shape + [.int32(2)])[1]!
            XCTAssertEqual([UInt8](mask), try cpu.uint8s(cpu.mask(of: w)), "\(pattern): the mask from packed indices")
            let source = try cpu.randomNormal([rows, columns], dtype: .float32, using: &generator)
            let gathered: [Float] = try module.launch("gather_compressed", grid: grid, [
                .inputArray(try cpu.floats(source)), .inputArray(packed), .output(bytes: slots * 4),
            ] + shape + [.int32(0), .int32(2)])[2]!.elements()
            XCTAssertEqual(gathered, try cpu.floats(cpu.gatherCompressed(source, layout: w)), "\(pattern): the gather from packed indices")
        }
    }

    /// The dW path's gather into the compressed gradient (16 dense values and 8 indices per thread), adding to
    /// what is there, against the CPU backend; float32 and bf16, indices one per byte and packed at 2 bits.
    func testPackedGradientGatherMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 12)
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .sparsity, dtype: dtype, kernels: ["gather_compressed_2_4": 6])
            let (rows, columns) = (24, 64)
            let w = try cpu.compress(cpu.randomNormal([rows, columns], dtype: dtype, using: &generator), pattern: .twoFour, mask: nil)
            let gradient = try cpu.randomNormal([rows, columns], dtype: dtype, using: &generator)
            let before = try cpu.randomNormal(w.values.shape, dtype: dtype, using: &generator)
            let expected = try cpu.cast(before, to: dtype)
            try cpu.accumulateGathered(gradient, layout: w, into: expected)

            let quads = rows * columns / 16
            let indices = try cpu.uint8s(w.indices)
            for bits in [8, 2] {
                let outputs = try module.launch("gather_compressed_2_4", grid: ((quads + 255) / 256, 1, 1), [
                    .input(try Self.raw(gradient, cpu)), .inputArray(bits == 2 ? Self.packedTwoBit(indices) : indices), .readWrite(try Self.raw(before, cpu)),
                    .int64(quads), .int32(1), .int32(bits),
                ])
                XCTAssertEqual(outputs[2], try Self.raw(expected, cpu), "\(dtype), \(bits)-bit indices: the gathered sums differ")
            }
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

    /// The norms with the residual stream fused in, bf16: forward writes `h = x + r` (rounded once) and
    /// normalises it, backward adds the residual gradient; LayerNorm and RMSNorm against the CPU backend, which
    /// composes the add. NULL operands (`.int64(0)`) are the plain forms. LayerNorm also drops r first (a post-norm
    /// block's branch: h equal to the CPU's `x + dropout(r)` to the bit) and hands back dx dropped the same way.
    func testNormsWithTheResidualFusedMatchTheCPUBackend() throws {
        let module = try EmulatedModule(family: .normalization, dtype: .bfloat16, kernels: [
            "layernorm_forward": 14, "layernorm_backward_input": 13, "rmsnorm_forward": 9, "rmsnorm_backward_input": 8,
        ])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 19)
        // 300 columns take the element loops; 1024 (half the threads hold a pack) and 2560 (some hold two) the
        // packed rows kept in registers, in 256-thread blocks and in the blocks `normBlock` gives (64 and 160
        // threads: two packs a thread), and 8192 (four packs of 256 threads).
        for (columns, threads) in [(300, 256), (1024, 256), (2560, 256), (1024, 64), (2560, 160), (8192, 256)] {
            try checkNorms(module, cpu, rows: 3, columns: columns, threads: threads, &generator)
        }
        XCTAssertEqual(normBlock(columns: 1024, elementBytes: 2).0, 64)
        XCTAssertEqual(normBlock(columns: 2560, elementBytes: 2).0, 160)
        XCTAssertEqual(normBlock(columns: 8192, elementBytes: 2).0, 256)
        XCTAssertEqual(normBlock(columns: 300, elementBytes: 4).0, 64)
        XCTAssertEqual(normBlock(columns: 65536, elementBytes: 2).0, 256, "the element loops beyond 4 packs a thread")
    }

    private func checkNorms(
        _ module: EmulatedModule, _ cpu: CPUBackend, rows: Int, columns: Int, threads: Int, _ generator: inout SeededGenerator
    ) throws {
        func random(_ shape: [Int]) throws -> Tensor { try cpu.randomNormal(shape, dtype: .bfloat16, using: &generator) }
        let (x, r, dy, dres) = (try random([rows, columns]), try random([rows, columns]), try random([rows, columns]), try random([rows, columns]))
        let (weight, bias) = (try random([columns]), try random([columns]))
        let bytes = rows * columns * 2

        for dropout in [nil, SeededDropout(probability: 0.3, seed: 0xD0)] {
            let dropping: [EmulatedModule.Argument] = dropout.map {
                [.int64(Int($0.seed)), .int32(Int($0.threshold)), .float(Float($0.keptScale))]
            } ?? [.int64(0), .int32(0), .float(1)]
            let what = "\(columns) columns\(dropout == nil ? "" : ", r dropped")"
            let layer = try cpu.layerNorm(x, adding: r, droppingResidual: dropout, weight: weight, bias: bias, epsilon: 1e-5)
            let forward = try module.launch("layernorm_forward", grid: (rows, 1, 1), block: threads, [
                .input(try Self.raw(x, cpu)), .input(try Self.raw(r, cpu)), .output(bytes: bytes), .input(try Self.raw(weight, cpu)),
                .input(try Self.raw(bias, cpu)), .output(bytes: bytes), .output(bytes: rows * 4), .output(bytes: rows * 4),
                .int64(rows), .int64(columns), .float(1e-5),
            ] + dropping)
            let sum = try XCTUnwrap(layer.sum)
            XCTAssertEqual(Self.bf16(forward[2]!), try cpu.floats(sum), "h = x + r, rounded to bf16 once (\(what))")
            try Self.assertClose(Self.bf16(forward[5]!), try cpu.floats(layer.output), tolerance: 1e-2, "LayerNorm(x + r) (\(what))")
            try Self.assertClose(forward[7]!.elements(), try cpu.floats(layer.reciprocalStd), tolerance: 1e-4, "rstd")
            let layerGradients = try cpu.layerNormBackward(dy, input: sum, weight: weight, saved: layer, addingGradient: dres)
            for (residualGradient, expected) in [(try Self.raw(dres, cpu), layerGradients.input), (nil, try cpu.layerNormBackward(dy, input: sum, weight: weight, saved: layer).input)] {
                let out = try module.launch("layernorm_backward_input", grid: (rows, 1, 1), block: threads, [
                    .input(try Self.raw(dy, cpu)), .input(forward[2]!), .input(try Self.raw(weight, cpu)), .input(forward[6]!), .input(forward[7]!),
                    residualGradient.map { .input($0) } ?? .int64(0), .output(bytes: bytes), .int64(rows), .int64(columns),
                    dropout == nil ? .int64(0) : .output(bytes: bytes),
                ] + dropping)
                let dx = out[6]!
                try Self.assertClose(Self.bf16(dx), try cpu.floats(expected), tolerance: 2e-2, "LayerNorm dx\(residualGradient == nil ? "" : " + dres") (\(what))")
                if let dropout {  // the kernel's own dx, dropped as the dropout op drops it
                    let own = try cpu.tensor(Self.bf16(dx), shape: [rows, columns], dtype: .bfloat16)
                    XCTAssertEqual(Self.bf16(out[9]!), try cpu.floats(cpu.dropout(own, probability: dropout.probability, seed: dropout.seed)), what)
                }
            }
        }

        let rms = try cpu.rmsNorm(x, adding: r, weight: weight, epsilon: 1e-5)
        let rmsForward = try module.launch("rmsnorm_forward", grid: (rows, 1, 1), block: threads, [
            .input(try Self.raw(x, cpu)), .input(try Self.raw(r, cpu)), .output(bytes: bytes), .input(try Self.raw(weight, cpu)),
            .output(bytes: bytes), .output(bytes: rows * 4), .int64(rows), .int64(columns), .float(1e-5),
        ])
        XCTAssertEqual(Self.bf16(rmsForward[2]!), try cpu.floats(try XCTUnwrap(rms.sum)))
        try Self.assertClose(Self.bf16(rmsForward[4]!), try cpu.floats(rms.output), tolerance: 1e-2, "RMSNorm(x + r)")
        let rmsGradients = try cpu.rmsNormBackward(dy, input: try XCTUnwrap(rms.sum), weight: weight, saved: rms, addingGradient: dres)
        let rmsDx = try module.launch("rmsnorm_backward_input", grid: (rows, 1, 1), block: threads, [
            .input(try Self.raw(dy, cpu)), .input(rmsForward[2]!), .input(try Self.raw(weight, cpu)), .input(rmsForward[5]!),
            .input(try Self.raw(dres, cpu)), .output(bytes: bytes), .int64(rows), .int64(columns),
        ])[5]!
        try Self.assertClose(Self.bf16(rmsDx), try cpu.floats(rmsGradients.input), tolerance: 2e-2, "RMSNorm dx + dres (\(columns) columns)")
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
    /// bf16 parameters, float32 and bf16 moments (`adamw_bf16_moments`), with a gradient scale, against the CPU
    /// backend (which rounds bf16 moments to nearest even as the kernel does); bf16 parameters also rounded
    /// stochastically, which must give the CPU's weights bit for bit (the same hash of seed and index).
    func testPackedAdamWMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 15)
        for (dtype, rounding) in [(DType.float32, ParameterRounding.nearest), (.bfloat16, .nearest), (.bfloat16, .stochastic(seed: 0xBEEF))] {
            let step = AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: 3, gradientScale: 0.5, rounding: rounding)
            let module = try EmulatedModule(family: .optimizer, dtype: dtype, kernels: ["adamw": 15, "adamw_bf16_moments": 15])
            for momentType in [DType.float32, .bfloat16] {
                let n = 1003
                let parameter = try cpu.randomNormal([n], dtype: dtype, using: &generator)
                let gradient = try cpu.randomNormal([n], dtype: dtype, using: &generator)
                let m = try cpu.randomNormal([n], dtype: momentType, using: &generator)
                let v = try cpu.cast(cpu.multiply(m, m), to: momentType)
                let start = (parameter: try Self.raw(parameter, cpu), m: try Self.raw(m, cpu), v: try Self.raw(v, cpu))
                try cpu.adamW(parameter: parameter, gradient: gradient, moment1: m, moment2: v, step: step)

                let corrections = (Float(1 - pow(Double(step.beta1), Double(step.step))), Float(1 - pow(Double(step.beta2), Double(step.step))))
                let kernel = momentType == .bfloat16 ? "adamw_bf16_moments" : "adamw"
                let out = try module.launch(kernel, grid: ((n + 255) / 256, 1, 1), [
                    .readWrite(start.parameter), .input(try Self.raw(gradient, cpu)), .readWrite(start.m), .readWrite(start.v), .int64(n),
                    .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon), .float(step.weightDecay),
                    .float(corrections.0), .float(corrections.1), .float(step.gradientScale),
                ] + Self.rounding(rounding))
                func floats(_ data: Data, _ type: DType) -> [Float] { type == .float32 ? data.elements() : Self.bf16(data) }
                if case .stochastic = rounding {
                    let (actual, expected) = (floats(out[0]!, dtype), try cpu.floats(parameter))
                    let differing = zip(actual, expected).filter { $0 != $1 }.count
                    XCTAssertLessThanOrEqual(differing, 2, "\(momentType) moments: stochastically rounded weights equal the CPU's")
                    var nearest = step
                    nearest.rounding = .nearest
                    let reference = try cpu.tensor(Self.bf16(start.parameter), shape: [n], dtype: dtype)
                    let (m2, v2) = (try cpu.tensor(floats(start.m, momentType), shape: [n], dtype: momentType),
                                    try cpu.tensor(floats(start.v, momentType), shape: [n], dtype: momentType))
                    try cpu.adamW(parameter: reference, gradient: gradient, moment1: m2, moment2: v2, step: nearest)
                    let roundedOtherwise = zip(actual, try cpu.floats(reference)).filter { $0 != $1 }.count
                    XCTAssertGreaterThan(roundedOtherwise, n / 10, "stochastic rounding differs from nearest for many elements")
                }
                for (name, actual, expected) in [("parameter", floats(out[0]!, dtype), try cpu.floats(parameter)),
                                                 ("m", floats(out[2]!, momentType), try cpu.floats(m)),
                                                 ("v", floats(out[3]!, momentType), try cpu.floats(v))] {
                    let worst = zip(actual, expected).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? .infinity
                    XCTAssertLessThanOrEqual(worst, dtype == .float32 && momentType == .float32 ? 1e-5 : 8e-3, "\(dtype), \(momentType) moments: \(name)")
                }
            }
        }
    }

    /// Multi-tensor AdamW and sum of squares: three bf16 tensors (1003 elements: packs and a tail over eight
    /// chunks; 300; 16) in one launch, each with its own weight decay and stochastic-rounding seed, against the CPU
    /// backend one tensor at a time. The table is built in C++ by a wrapper here (the emulator passes buffers, not
    /// structs); its byte layout from Swift is checked in MultiTensorLaunchTests.
    func testMultiTensorAdamWAndSumOfSquaresMatchTheCPUBackend() throws {
        let wrappers = """
        static long long blocks_of(long long n, long long chunk) { return (n + chunk - 1) / chunk; }
        void adamw_multi_three(T* p0, const T* g0, float* m0, float* v0, long long n0, float d0, unsigned s0,
                               T* p1, const T* g1, float* m1, float* v1, long long n1, float d1, unsigned s1,
                               T* p2, const T* g2, float* m2, float* v2, long long n2, float d2, unsigned s2,
                               long long chunk, float lr, float beta1, float beta2, float eps, float c1, float c2, float gs) {
            AdamWTable t{};
            t.count = 3;
            t.entries[0] = AdamWEntry{p0, g0, m0, v0, n0, 0, d0, s0, 1, 0};
            t.entries[1] = AdamWEntry{p1, g1, m1, v1, n1, blocks_of(n0, chunk), d1, s1, 1, 0};
            t.entries[2] = AdamWEntry{p2, g2, m2, v2, n2, blocks_of(n0, chunk) + blocks_of(n1, chunk), d2, s2, 1, 0};
            adamw_multi(t, chunk, lr, beta1, beta2, eps, c1, c2, gs);
        }
        """
        let squaresWrapper = """
        void sum_of_squares_three(const T* x0, long long n0, const T* x1, long long n1, const T* x2, long long n2,
                                  long long chunk, float* partials) {
            SquaresTable t{};
            t.count = 3;
            long long b1 = (n0 + chunk - 1) / chunk, b2 = b1 + (n1 + chunk - 1) / chunk;
            t.entries[0] = SquaresEntry{x0, n0, 0};
            t.entries[1] = SquaresEntry{x1, n1, b1};
            t.entries[2] = SquaresEntry{x2, n2, b2};
            sum_of_squares_multi(t, chunk, partials);
        }
        """
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 23)
        let sizes = [1003, 300, 16], chunk = 128
        let blocks = sizes.map { ($0 + chunk - 1) / chunk }.reduce(0, +)
        let optimizer = try EmulatedModule(
            source: try KernelFamily.optimizer.translationUnit(for: .bfloat16) + wrappers, kernels: ["adamw_multi_three": 29])
        let shared = AdamWStep(learningRate: 1e-2, step: 4, gradientScale: 0.5)
        var arguments: [EmulatedModule.Argument] = []
        var expected: [(parameter: Tensor, m: Tensor, v: Tensor)] = []
        for (index, n) in sizes.enumerated() {
            let parameter = try cpu.randomNormal([n], dtype: .bfloat16, using: &generator)
            let gradient = try cpu.randomNormal([n], dtype: .bfloat16, using: &generator)
            let m = try cpu.randomNormal([n], dtype: .float32, using: &generator)
            let v = try cpu.multiply(m, m)
            let seed = UInt32(0xA11CE + index)
            let tensor = AdamWTensor(parameter: parameter, gradient: gradient, moment1: m, moment2: v, weightDecay: [0.1, 0, 0.05][index],
                                     rounding: .stochastic(seed: seed))
            arguments += [.readWrite(try Self.raw(parameter, cpu)), .input(try Self.raw(gradient, cpu)), .readWrite(try Self.raw(m, cpu)),
                          .readWrite(try Self.raw(v, cpu)), .int64(n), .float(tensor.weightDecay), .int64(Int(seed))]
            try cpu.adamW([tensor], step: shared)
            expected.append((parameter, m, v))
        }
        let corrections = (Float(1 - pow(Double(shared.beta1), 4)), Float(1 - pow(Double(shared.beta2), 4)))
        let out = try optimizer.launch("adamw_multi_three", grid: (blocks, 1, 1), block: 64, arguments + [
            .int64(chunk), .float(shared.learningRate), .float(shared.beta1), .float(shared.beta2), .float(shared.epsilon),
            .float(corrections.0), .float(corrections.1), .float(shared.gradientScale),
        ])
        for (index, reference) in expected.enumerated() {
            let base = index * 7
            let parameters = Self.bf16(out[base]!)
            let differing = zip(parameters, try cpu.floats(reference.parameter)).filter { $0 != $1 }.count
            XCTAssertLessThanOrEqual(differing, 2, "tensor \(index): stochastically rounded weights equal the CPU's")
            try Self.assertClose(out[base + 2]!.elements(), try cpu.floats(reference.m), tolerance: 1e-5, "tensor \(index) m")
            try Self.assertClose(out[base + 3]!.elements(), try cpu.floats(reference.v), tolerance: 1e-5, "tensor \(index) v")
        }

        let reductions = try EmulatedModule(
            source: try KernelFamily.reductions.translationUnit(for: .bfloat16) + squaresWrapper, kernels: ["sum_of_squares_three": 8])
        let tensors = try sizes.map { try cpu.randomNormal([$0], dtype: .bfloat16, using: &generator) }
        let partials: [Float] = try reductions.launch("sum_of_squares_three", grid: (blocks, 1, 1), block: 64, [
            .input(try Self.raw(tensors[0], cpu)), .int64(sizes[0]), .input(try Self.raw(tensors[1], cpu)), .int64(sizes[1]),
            .input(try Self.raw(tensors[2], cpu)), .int64(sizes[2]), .int64(chunk), .output(bytes: blocks * 4),
        ])[7]!.elements()
        let total = try cpu.totalSumOfSquares(tensors)
        XCTAssertEqual(partials.reduce(0.0) { $0 + Double($1) }, total, accuracy: 1e-5 * total)
    }

    /// LAMB over three tensors in the three multi-tensor launches (moments and per-block norms, per-tensor sums, the
    /// trust-ratio step) gives the CPU's composed LAMB: a tensor without weight decay takes the plain update.
    func testMultiTensorLAMBMatchesTheComposedCPUUpdate() throws {
        let wrappers = """
        static AdamWTable lamb_table(T* p0, const T* g0, float* m0, float* v0, long long n0, T* p1, const T* g1, float* m1, float* v1,
                                     long long n1, T* p2, const T* g2, float* m2, float* v2, long long n2, long long chunk) {
            AdamWTable t{};
            t.count = 3;
            long long b1 = (n0 + chunk - 1) / chunk, b2 = b1 + (n1 + chunk - 1) / chunk;
            t.entries[0] = AdamWEntry{p0, g0, m0, v0, n0, 0, 0.1f, 0u, 0, 0};
            t.entries[1] = AdamWEntry{p1, g1, m1, v1, n1, b1, 0.0f, 0u, 0, 0};
            t.entries[2] = AdamWEntry{p2, g2, m2, v2, n2, b2, 0.05f, 0u, 0, 0};
            return t;
        }
        #define LAMB_THREE T* p0, const T* g0, float* m0, float* v0, long long n0, T* p1, const T* g1, float* m1, float* v1, long long n1, \
            T* p2, const T* g2, float* m2, float* v2, long long n2, long long chunk, float lr, float beta1, float beta2, float eps, \
            float c1, float c2, float gs
        #define LAMB_TABLE lamb_table(p0, g0, m0, v0, n0, p1, g1, m1, v1, n1, p2, g2, m2, v2, n2, chunk)
        void lamb_moments_three(LAMB_THREE, float* partials) { lamb_moments_multi(LAMB_TABLE, chunk, lr, beta1, beta2, eps, c1, c2, gs, partials); }
        void lamb_norms_three(LAMB_THREE, const float* partials, float* sums) { lamb_norms_multi(LAMB_TABLE, chunk, partials, sums); }
        void lamb_apply_three(LAMB_THREE, const float* sums) { lamb_apply_multi(LAMB_TABLE, chunk, lr, beta1, beta2, eps, c1, c2, gs, sums); }
        """
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 31)
        let sizes = [1003, 300, 16], chunk = 128
        let blocks = sizes.map { ($0 + chunk - 1) / chunk }.reduce(0, +)
        let module = try EmulatedModule(
            source: try KernelFamily.optimizer.translationUnit(for: .bfloat16) + wrappers,
            kernels: ["lamb_moments_three": 24, "lamb_norms_three": 25, "lamb_apply_three": 24])
        let shared = AdamWStep(learningRate: 2e-2, step: 3, gradientScale: 0.5)
        var operands: [(parameter: Data, gradient: Data, m: Data, v: Data)] = []
        var tensors: [AdamWTensor] = []
        for (index, n) in sizes.enumerated() {
            let parameter = try cpu.randomNormal([n], dtype: .bfloat16, using: &generator)
            let gradient = try cpu.randomNormal([n], dtype: .bfloat16, using: &generator)
            let m = try cpu.randomNormal([n], dtype: .float32, using: &generator)
            let v = try cpu.multiply(m, m)
            operands.append((try Self.raw(parameter, cpu), try Self.raw(gradient, cpu), try Self.raw(m, cpu), try Self.raw(v, cpu)))
            tensors.append(AdamWTensor(parameter: parameter, gradient: gradient, moment1: m, moment2: v, weightDecay: [0.1, 0, 0.05][index],
                                       rounding: .nearest))
        }
        try cpu.lamb(tensors, step: shared)
        let corrections = (Float(1 - pow(Double(shared.beta1), 3)), Float(1 - pow(Double(shared.beta2), 3)))
        let hyper: [EmulatedModule.Argument] = [
            .int64(chunk), .float(shared.learningRate), .float(shared.beta1), .float(shared.beta2), .float(shared.epsilon),
            .float(corrections.0), .float(corrections.1), .float(shared.gradientScale),
        ]
        func arguments() -> [EmulatedModule.Argument] {
            zip(operands, sizes).flatMap { operand, n in
                [.readWrite(operand.parameter), .input(operand.gradient), .readWrite(operand.m), .readWrite(operand.v), .int64(n)] as [EmulatedModule.Argument]
            } + hyper
        }
        let moments = try module.launch("lamb_moments_three", grid: (blocks, 1, 1), block: 64, arguments() + [.output(bytes: 2 * blocks * 4)])
        for index in sizes.indices { (operands[index].m, operands[index].v) = (moments[5 * index + 2]!, moments[5 * index + 3]!) }
        let sums = try module.launch("lamb_norms_three", grid: (3, 1, 1), block: 64, arguments() + [.input(moments[23]!), .output(bytes: 3 * 2 * 4)])[24]!
        let applied = try module.launch("lamb_apply_three", grid: (blocks, 1, 1), block: 64, arguments() + [.input(sums)])
        for (index, tensor) in tensors.enumerated() {
            try Self.assertClose(Self.bf16(applied[5 * index]!), try cpu.floats(tensor.parameter), tolerance: 1e-2, "tensor \(index) weights")
            try Self.assertClose(operands[index].m.elements(), try cpu.floats(tensor.moment1), tolerance: 1e-5, "tensor \(index) m")
            try Self.assertClose(operands[index].v.elements(), try cpu.floats(tensor.moment2), tolerance: 1e-5, "tensor \(index) v")
        }
        // The first sum of each tensor is ‖w‖² of its weights before the step.
        let norms: [Float] = sums.elements()
        let before = Self.bf16(operands[0].parameter).reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(Double(norms[0]), before, accuracy: 1e-5 * before)
    }

    /// AdamW on values held in cuSPARSELt's layout (through a full map and through a packed periodic one) equals
    /// AdamW in W's compressed order followed by the scatter into that layout; float32 and bf16 (rounded stochastically).
    func testAdamWInTheCompressedCopyMatchesAdamWThenScatter() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 16)
        // Stochastic rounding (bf16 only): the random bits follow W's order, so the copy rounds as W would.
        let step = AdamWStep(learningRate: 1e-2, weightDecay: 0.1, step: 3, gradientScale: 0.5, rounding: .stochastic(seed: 0xF00D))
        let corrections = (Float(1 - pow(Double(step.beta1), Double(step.step))), Float(1 - pow(Double(step.beta2), Double(step.step))))
        let (tile, tiles) = (64, 8)
        let n = tile * tiles
        let within = Array(0..<UInt32(tile)).shuffled(using: &generator)  // the same order in every tile: periodic
        let map = (0..<n).map { UInt32($0 / tile * tile) + within[$0 % tile] }
        let bases = (0..<tiles).map { map[$0 * tile] }
        let offsets = (0..<tile).map { Int16(Int(map[$0]) - Int(map[0])) }
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .optimizer, dtype: dtype, kernels: ["adamw_mapped": 20, "adamw_mapped_bf16_moments": 20])
            let parameter = try cpu.randomNormal([n], dtype: dtype, using: &generator)
            let gradient = try cpu.randomNormal([n], dtype: dtype, using: &generator)
            let m = try cpu.randomNormal([n], dtype: .float32, using: &generator)
            let v = try cpu.cast(cpu.multiply(m, m), to: .float32)
            let start = (values: try cpu.floats(parameter), m: try cpu.floats(m), v: try cpu.floats(v))
            let copy = try cpu.tensor(map.map { start.values[Int($0)] }, shape: [n], dtype: dtype)  // cuSPARSELt's layout
            try cpu.adamW(parameter: parameter, gradient: gradient, moment1: m, moment2: v, step: step)
            let updated = try cpu.floats(parameter)
            for packed in [false, true] {
                let hyper: [EmulatedModule.Argument] = [
                    .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon), .float(step.weightDecay),
                    .float(corrections.0), .float(corrections.1), .float(step.gradientScale),
                ] + Self.rounding(step.rounding)
                let out = try module.launch("adamw_mapped", grid: (2, 1, 1), [
                    .readWrite(try Self.raw(copy, cpu)), packed ? .int64(0) : .inputArray(map), packed ? .inputArray(bases) : .int64(0),  // (0: a null pointer)
                    packed ? .inputArray(offsets) : .int64(0), .int32(6), .int64(tile - 1),
                    .input(try Self.raw(gradient, cpu)), .readWriteArray(start.m), .readWriteArray(start.v), .int64(n),
                ] + hyper)
                let stepped: [Float] = dtype == .float32 ? out[0]!.elements() : Self.bf16(out[0]!)
                let expected = map.map { updated[Int($0)] }
                let worst = zip(stepped, expected).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, dtype == .float32 ? 1e-5 : 8e-3, "\(dtype), \(packed ? "packed" : "full") map: values")
                for (index, name, reference) in [(7, "first", try cpu.floats(m)), (8, "second", try cpu.floats(v))] {
                    let moments: [Float] = out[index]!.elements()
                    XCTAssertLessThanOrEqual(zip(moments, reference).map { abs($0 - $1) }.max() ?? .infinity, 1e-5, "\(dtype): \(name) moment in W's order")
                }
                // bf16 moments: the same step with the moments stored rounded (the CPU rounds them the same way).
                let (m16, v16) = (try cpu.cast(cpu.tensor(start.m, shape: [n], dtype: .float32), to: .bfloat16),
                                  try cpu.cast(cpu.tensor(start.v, shape: [n], dtype: .float32), to: .bfloat16))
                let (m16Start, v16Start) = (try Self.raw(m16, cpu), try Self.raw(v16, cpu))
                let reference = try cpu.tensor(start.values, shape: [n], dtype: dtype)
                try cpu.adamW(parameter: reference, gradient: gradient, moment1: m16, moment2: v16, step: step)
                let out16 = try module.launch("adamw_mapped_bf16_moments", grid: (2, 1, 1), [
                    .readWrite(try Self.raw(copy, cpu)), packed ? .int64(0) : .inputArray(map), packed ? .inputArray(bases) : .int64(0),
                    packed ? .inputArray(offsets) : .int64(0), .int32(6), .int64(tile - 1),
                    .input(try Self.raw(gradient, cpu)), .readWrite(m16Start), .readWrite(v16Start), .int64(n),
                ] + hyper)
                let referenceValues = try cpu.floats(reference)
                let stepped16: [Float] = dtype == .float32 ? out16[0]!.elements() : Self.bf16(out16[0]!)
                let worst16 = zip(stepped16, map.map { referenceValues[Int($0)] }).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst16, 8e-3, "\(dtype), bf16 moments, \(packed ? "packed" : "full") map: values")
                try Self.assertClose(Self.bf16(out16[7]!), try cpu.floats(m16), tolerance: 8e-3, "\(dtype): bf16 first moment")
                try Self.assertClose(Self.bf16(out16[8]!), try cpu.floats(v16), tolerance: 8e-3, "\(dtype): bf16 second moment")
            }
        }
    }

    /// Cross-entropy: the forward's online max and sum over packed rows (probabilities and per-row losses, an
    /// ignored row among them), then the backward in place over the probabilities, against the CPU backend (bf16).
    func testCrossEntropyMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(family: .loss, dtype: .bfloat16, kernels: ["cross_entropy_forward": 7, "cross_entropy_backward": 7])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 17)
        let (rows, classes, ignore): (Int, Int, Int32) = (6, 1000, -100)  // rows of whole 16-byte packs
        let logits = try cpu.randomNormal([rows, classes], dtype: .bfloat16, using: &generator)
        let targetValues: [Int32] = [3, 999, ignore, 0, 512, 7]
        let targets = try cpu.tensor(targetValues, shape: [rows])
        let expected = try cpu.crossEntropy(logits: logits, targets: targets, ignoreIndex: ignore)
        let forward = try module.launch("cross_entropy_forward", grid: (rows, 1, 1), [
            .input(try Self.raw(logits, cpu)), .inputArray(targetValues), .output(bytes: rows * classes * 2), .output(bytes: rows * 4),
            .int64(rows), .int64(classes), .int32(Int(ignore)),
        ])
        try Self.assertClose(Self.bf16(forward[2]!), try cpu.floats(expected.probabilities), tolerance: 1e-2, "probabilities")
        let rowLosses: [Float] = forward[3]!.elements()
        XCTAssertEqual(rowLosses[2], 0, "the ignored row adds nothing")
        XCTAssertEqual(rowLosses.reduce(0, +) / Float(expected.countedRows), try cpu.floats(expected.loss)[0], accuracy: 1e-3)

        let scale: Float = 0.5
        let gradient = try module.launch("cross_entropy_backward", grid: ((rows * classes + 255) / 256, 1, 1), [
            .input(forward[2]!), .inputArray(targetValues), .readWrite(forward[2]!), .int64(rows), .int64(classes), .int32(Int(ignore)),
            .float(scale / Float(expected.countedRows)),
        ])[2]!
        let reference = try cpu.crossEntropyBackward(expected, targets: targets, ignoreIndex: ignore, scale: scale)
        try Self.assertClose(Self.bf16(gradient), try cpu.floats(reference), tolerance: 1e-2, "logit gradients")
    }

    /// The decode step's attention: every sequence's one query over its own cache rows (lengths 1 to past a round of
    /// every warp's keys, grouped-query heads, head dimensions 80 and 128 — lanes with 3 and 4 elements), and the row moves that
    /// fill the cache, match the CPU backend.
    func testDecodeAttentionAndRowMovesMatchTheCPUBackend() throws {
        let cpu = CPUBackend()
        let module = try EmulatedModule(
            family: .decoding, dtype: .bfloat16,
            kernels: ["decode_attention": 12, "decode_attention_wide": 12, "decode_attention_combine": 5, "move_rows": 6])
        for (hq, hkv, d) in [(4, 2, 80), (2, 2, 128), (4, 1, 64)] {
            var generator = SeededGenerator(seed: UInt64(d))
            let rows = 90
            let keys = try cpu.randomNormal([rows, hkv * d], dtype: .bfloat16, using: &generator)
            let values = try cpu.randomNormal([rows, hkv * d], dtype: .bfloat16, using: &generator)
            // Lengths within one warp's group of keys, across warps, and past one round of every warp's group (32 keys).
            let (starts, lengths) = ([0, 10, 13, 30], [1, 3, 17, 59])
            let query = try cpu.randomNormal([starts.count, hq * d], dtype: .bfloat16, using: &generator)
            let shape = DecodeAttentionShape(queryHeads: hq, keyValueHeads: hkv, headDimension: d)
            let expected = try cpu.floats(cpu.decodeAttention(query: query, keys: keys, values: values, starts: starts, lengths: lengths, shape: shape))
            // Whole sequences a block (no partials: a null pointer), then split into chunks of 16 keys (4 splits: empty
            // ones for the short sequences) merged by the combine.
            // The wide kernel where it applies (16-byte chunks a key: d = 64 and 128 here, not 80), the plain one always.
            let kernels = Set([DecodeAttentionKernel.plain, .wide].map { $0.name(headDimension: d, elementBytes: 2) })
            XCTAssertEqual(kernels.count, d == 80 ? 1 : 2)
            for kernel in kernels.sorted() {
            for chunk in [Int(Int32.max), 16] {
                let splits = chunk == 16 ? 4 : 1
                let partialBytes = starts.count * hq * splits * (d + 2) * 4
                let first = try module.launch(kernel, grid: (starts.count, hq, splits), block: 256, [
                    .input(try Self.raw(query, cpu)), .input(try Self.raw(keys, cpu)), .input(try Self.raw(values, cpu)),
                    .inputArray(starts.map(Int32.init)), .inputArray(lengths.map(Int32.init)), .output(bytes: query.byteCount),
                    splits == 1 ? .int64(0) : .output(bytes: partialBytes), .int64(hq), .int64(hkv), .int64(d), .float(1 / Float(d).squareRoot()),
                    .int64(chunk),
                ])
                var out = first[5]!
                if splits > 1 {
                    out = try module.launch("decode_attention_combine", grid: (starts.count, hq, 1), block: 128, [
                        .input(first[6]!), .output(bytes: query.byteCount), .int64(splits), .int64(hq), .int64(d),
                    ])[1]!
                }
                try Self.assertClose(Self.bf16(out), expected, tolerance: 2e-2, "\(kernel) hq \(hq) hkv \(hkv) d \(d), \(splits) splits")
            }
            }
        }
        // Rows 3, 0 of a [4, 5] matrix into rows 6, 1 of a [8, 5] one; and gathered (no target indices).
        let source = try cpu.tensor((0..<20).map(Float.init), shape: [4, 5], dtype: .bfloat16)
        let target = try cpu.zeros([8, 5], dtype: .bfloat16)
        try cpu.moveRows(source, from: [3, 0], into: target, to: [6, 1])
        let moved = try module.launch("move_rows", grid: (1, 1, 1), [
            .input(try Self.raw(source, cpu)), .readWrite(try Self.raw(cpu.zeros([8, 5], dtype: .bfloat16), cpu)),
            .inputArray([Int32(3), 0]), .inputArray([Int32(6), 1]), .int64(2), .int64(5),
        ])[1]!
        XCTAssertEqual(Self.bf16(moved), try cpu.floats(target))
        XCTAssertEqual(Array(try cpu.floats(target)[30..<35]), [15, 16, 17, 18, 19])
        // Rows of whole 16-byte packs (24 bf16: three packs) move a pack per thread; gathered, then scattered.
        let wide = try cpu.tensor((0..<96).map(Float.init), shape: [4, 24], dtype: .bfloat16)
        for (from, to) in [([2, 0, 3] as [Int32]?, nil as [Int32]?), (nil, [5, 0, 2])] {
            let expected = try cpu.zeros([6, 24], dtype: .bfloat16)
            try cpu.moveRows(from == nil ? try cpu.tensor((0..<72).map(Float.init), shape: [3, 24], dtype: .bfloat16) : wide,
                             from: from.map { $0.map(Int.init) }, into: expected, to: to.map { $0.map(Int.init) })
            let packed = try module.launch("move_rows", grid: (2, 1, 1), block: 4, [
                .input(try Self.raw(from == nil ? try cpu.tensor((0..<72).map(Float.init), shape: [3, 24], dtype: .bfloat16) : wide, cpu)),
                .readWrite(try Self.raw(cpu.zeros([6, 24], dtype: .bfloat16), cpu)),
                from.map { .inputArray($0) } ?? .int64(0), to.map { .inputArray($0) } ?? .int64(0), .int64(3), .int64(24),
            ])[1]!
            XCTAssertEqual(Self.bf16(packed), try cpu.floats(expected), "from \(String(describing: from)) to \(String(describing: to))")
        }
    }

    /// Sampled decoding's draw: rows of several blocks' worth of columns at various temperatures and uniforms (a
    /// greedy row among them, NaNs, a row of −∞) give the CPU backend's tokens.
    func testSampleRowsMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        let module = try EmulatedModule(family: .decoding, dtype: .bfloat16, kernels: ["sample_rows": 6])
        var generator = SeededGenerator(seed: 29)
        let (rows, columns) = (6, 1003)
        var values = try cpu.floats(cpu.randomNormal([rows, columns], dtype: .bfloat16, using: &generator)).map { $0 * 3 }
        for column in stride(from: 0, to: columns, by: 7) { values[2 * columns + column] = .nan }
        for column in 0..<columns { values[5 * columns + column] = -.infinity }
        let logits = try cpu.tensor(values, shape: [rows, columns], dtype: .bfloat16)
        let temperatures: [Float] = [1, 0.5, 2, 0, 0.8, 1]
        let uniforms: [Float] = [0.1, 0.5, 0.9, 0.3, 0.61, 0.2]
        let expected = try cpu.int32s(cpu.sampleRows(logits, temperatures: temperatures, uniforms: uniforms))
        let out = try module.launch("sample_rows", grid: (4, 1, 1), [
            .input(try Self.raw(logits, cpu)), .output(bytes: rows * 4), .inputArray(temperatures), .inputArray(uniforms),
            .int64(rows), .int64(columns),
        ])
        XCTAssertEqual(out[1]!.elements() as [Int32], expected)
        XCTAssertEqual(expected[5], 0, "nothing to draw from: column 0")
    }

    /// Top-k / top-p truncation on the device equals the CPU backend's: bf16 rows (many tied values), top-k alone,
    /// top-p alone, both, neither, a greedy row copied, NaNs never kept, a row of −∞, rows past the grid by striding.
    func testTruncateRowsMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        let module = try EmulatedModule(family: .decoding, dtype: .bfloat16, kernels: ["truncate_rows": 7])
        var generator = SeededGenerator(seed: 31)
        let (rows, columns) = (7, 411)  // (more columns than the block has threads)
        var values = try cpu.floats(cpu.randomNormal([rows, columns], dtype: .bfloat16, using: &generator)).map { ($0 * 4).rounded() / 2 }
        for column in stride(from: 0, to: columns, by: 7) { values[2 * columns + column] = .nan }
        for column in 0..<columns { values[5 * columns + column] = -.infinity }
        let logits = try cpu.tensor(values, shape: [rows, columns], dtype: .bfloat16)
        let temperatures: [Float] = [1, 0.5, 2, 0, 0.8, 1, 1.3]
        let topK = [40, 0, 7, 5, 1, 3, 0]
        let topP: [Float] = [1, 0.9, 0.5, 0.5, 0.3, 0.7, 1]
        let expected = try cpu.floats(cpu.truncatedLogits(logits, temperatures: temperatures, topK: topK, topP: topP))
        let out = try module.launch("truncate_rows", grid: (3, 1, 1), [
            .input(try Self.raw(logits, cpu)), .output(bytes: rows * columns * 2), .inputArray(temperatures), .inputArray(topK.map(Int32.init)),
            .inputArray(topP), .int64(rows), .int64(columns),
        ])[1]!
        let got = Self.bf16(out)
        for row in 0..<rows {
            let range = (row * columns)..<((row + 1) * columns)
            XCTAssertEqual(got[range].map { $0.isNaN ? 99 : $0 }, expected[range].map { $0.isNaN ? 99 : $0 }, "row \(row)")
        }
        XCTAssertEqual(expected[0..<columns].filter { $0 > -.infinity }.count, 40, "top-40 keeps 40 (ties split by column)")
        XCTAssertEqual(expected[(4 * columns)..<(5 * columns)].filter { $0 > -.infinity }.count, 1)
    }

    /// `split_columns` takes three column blocks from an offset in each row — element by element, and 16 bytes at a
    /// time where every offset and width allows —, over more rows than the grid's blocks, as the CPU backend's
    /// `splitColumns` does; parts marked scattered land in the rows given (the CPU's `scatterRows`), the others in order.
    func testSplitColumnsMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        let module = try EmulatedModule(family: .layout, dtype: .bfloat16, kernels: ["split_columns": 12])
        let targetRows = [6, 0, 3, 9, 2]
        for (columns, first, widths) in [(30, 4, [10, 7, 9]), (64, 8, [16, 8, 24])] {
            let rows = targetRows.count
            var generator = SeededGenerator(seed: 41)
            let x = try cpu.randomNormal([rows, columns], dtype: .bfloat16, using: &generator)
            let parts = Array(try cpu.splitColumns(x, widths: [first] + widths + [columns - first - widths.reduce(0, +)]).dropFirst().prefix(3))
            for scattered in [0, 0b110] {
                let out = try module.launch("split_columns", grid: (2, 1, 1), block: 32, [
                    .input(try Self.raw(x, cpu)), .output(bytes: 10 * widths[0] * 2), .output(bytes: 10 * widths[1] * 2),
                    .output(bytes: 10 * widths[2] * 2), .inputArray(targetRows.map(Int32.init)), .int64(rows), .int64(columns), .int64(first),
                    .int64(widths[0]), .int64(widths[1]), .int64(widths[2]), .int32(scattered),
                ])
                for (index, part) in parts.enumerated() {
                    let got = Self.bf16(out[index + 1]!), expected = try cpu.floats(part), width = widths[index]
                    for r in 0..<rows {
                        let row = scattered >> index & 1 == 1 ? targetRows[r] : r
                        XCTAssertEqual(Array(got[(row * width)..<((row + 1) * width)]), Array(expected[(r * width)..<((r + 1) * width)]),
                                       "\(columns) columns: part \(index) row \(r), scattered \(scattered)")
                    }
                }
            }
        }
    }

    /// The GEMM route's row kernels with a key limit (an encoder's padding): softmax over the visible keys only —
    /// up to the limit, and up to the query when causal —, zero past them, the log-sum-exp of the visible scores; the
    /// backward's recomputed probabilities are the same, and its score gradient leaves the masked positions at zero.
    func testAttentionRowKernelsMaskPadding() throws {
        let module = try EmulatedModule(family: .attention, dtype: .float32, kernels: [
            "attention_softmax_rows": 12, "attention_probabilities": 13, "attention_score_gradient": 13,
        ])
        let noDropout: [EmulatedModule.Argument] = [.int64(0), .int32(0), .float(1)]
        var generator = SeededGenerator(seed: 37)
        let (hq, tq, tk) = (2, 5, 5)
        let scores = (0..<(hq * tq * tk)).map { _ in Float(generator.nextUniform() * 4 - 2) }
        for (causal, limit) in [(0, 3), (1, 3), (0, 5)] {
            let run = try module.launch("attention_softmax_rows", grid: (hq * tq, 1, 1), [
                .inputArray(scores), .output(bytes: scores.count * 4), .output(bytes: hq * tq * 4),
                .int64(tq), .int64(tk), .int64(hq), .int64(0), .int32(causal), .int64(limit),
            ] + noDropout)
            let probabilities: [Float] = run[1]!.elements(), lse: [Float] = run[2]!.elements()
            for row in 0..<(hq * tq) {
                let (h, i) = (row / tq, row % tq)
                let visible = min(causal == 1 ? i + 1 : tk, limit)
                let kept = Array(scores[(row * tk)..<(row * tk + visible)])
                let top = kept.max()!, total = kept.map { exp(Double($0 - top)) }.reduce(0, +)
                for j in 0..<tk {
                    let expected = j < visible ? Float(exp(Double(scores[row * tk + j] - top)) / total) : 0
                    XCTAssertEqual(probabilities[row * tk + j], expected, accuracy: 1e-5, "causal \(causal) limit \(limit) row \(row) key \(j)")
                }
                XCTAssertEqual(lse[i * hq + h], Float(Double(top) + log(total)), accuracy: 1e-4)
            }
            let recomputed: [Float] = try module.launch("attention_probabilities", grid: (hq * tq, 1, 1), [
                .inputArray(scores), .output(bytes: scores.count * 4), .inputArray(lse),
                .int64(tq), .int64(tk), .int64(hq), .int64(0), .int32(causal), .int64(limit), .int64(0),
            ] + noDropout)[1]!.elements()
            for (a, b) in zip(recomputed, probabilities) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            let gradient: [Float] = try module.launch("attention_score_gradient", grid: (hq * tq, 1, 1), [
                .readWriteArray(recomputed), .inputArray(scores.map { $0 * 0.5 }), .inputArray([Float](repeating: 0.1, count: hq * tq)),
                .int64(tq), .int64(tk), .int64(hq), .int64(0), .int32(causal), .float(0.5), .int64(limit),
            ] + noDropout)[0]!.elements()
            for row in 0..<(hq * tq) {
                let visible = min(causal == 1 ? row % tq + 1 : tk, limit)
                for j in visible..<tk { XCTAssertEqual(gradient[row * tk + j], 0, "masked positions keep no gradient") }
            }
        }
    }

    /// The GEMM route's row kernels with attention dropout, for batch element 1 of a padded sequence: the forward
    /// probabilities are the softmax times Z (0 where SeededDropout's mask drops, 1 / (1 − p) where it keeps, the
    /// mask index counting batch element 1's rows after element 0's), the log-sum-exp the undropped one; backward
    /// recomputes both P and P ⊙ Z, and its score gradient is P·(Z·dP − δ)·scale.
    func testAttentionRowKernelsDropProbabilitiesAsTheCPUDoes() throws {
        let module = try EmulatedModule(family: .attention, dtype: .float32, kernels: [
            "attention_softmax_rows": 12, "attention_probabilities": 13, "attention_score_gradient": 13,
        ])
        var generator = SeededGenerator(seed: 38)
        let (hq, tq, tk, b, limit) = (2, 6, 6, 1, 5)
        let dropout = SeededDropout(probability: 0.3, seed: 0xB3A7)
        let shape = AttentionShape(batch: 2, queryLength: tq, queryHeads: hq, headDimension: 8, causal: false, keyLengths: [6, limit], dropout: dropout)
        let arguments: [EmulatedModule.Argument] = [.int64(Int(truncatingIfNeeded: dropout.seed)), .int32(Int(dropout.threshold)), .float(Float(dropout.keptScale))]
        let scores = (0..<(hq * tq * tk)).map { _ in Float(generator.nextUniform() * 4 - 2) }
        let run = try module.launch("attention_softmax_rows", grid: (hq * tq, 1, 1), [
            .inputArray(scores), .output(bytes: scores.count * 4), .output(bytes: 2 * hq * tq * 4),
            .int64(tq), .int64(tk), .int64(hq), .int64(b), .int32(0), .int64(limit),
        ] + arguments)
        let dropped: [Float] = run[1]!.elements(), lse: [Float] = run[2]!.elements()
        var (undropped, factors) = ([Float](repeating: 0, count: scores.count), [Float](repeating: 0, count: scores.count))
        var drops = 0
        for row in 0..<(hq * tq) {
            let (h, i) = (row / tq, row % tq)
            let visible = Array(scores[(row * tk)..<(row * tk + limit)])
            let top = visible.max()!, total = visible.map { exp(Double($0 - top)) }.reduce(0, +)
            XCTAssertEqual(lse[(b * tq + i) * hq + h], Float(Double(top) + log(total)), accuracy: 1e-4, "the undropped log-sum-exp")
            for j in 0..<tk {
                let p = j < limit ? Float(exp(Double(scores[row * tk + j] - top)) / total) : 0
                let keeps = DropoutMask.keeps(seed: dropout.seed, index: shape.dropoutIndex(batch: b, head: h, query: i) + j, threshold: dropout.threshold)
                factors[row * tk + j] = keeps ? Float(dropout.keptScale) : 0
                if !keeps && j < limit { drops += 1 }
                undropped[row * tk + j] = p
                XCTAssertEqual(dropped[row * tk + j], p * factors[row * tk + j], accuracy: 1e-5, "row \(row) key \(j)")
            }
        }
        XCTAssertTrue((8...28).contains(drops), "about 30% of the 60 visible probabilities dropped, not \(drops)")
        let recomputed = try module.launch("attention_probabilities", grid: (hq * tq, 1, 1), [
            .inputArray(scores), .output(bytes: scores.count * 4), .inputArray(lse),
            .int64(tq), .int64(tk), .int64(hq), .int64(b), .int32(0), .int64(limit), .output(bytes: scores.count * 4),
        ] + arguments)
        for (a, e) in zip(recomputed[1]!.elements() as [Float], undropped) { XCTAssertEqual(a, e, accuracy: 1e-5, "P recomputed") }
        for (a, e) in zip(recomputed[9]!.elements() as [Float], dropped) { XCTAssertEqual(a, e, accuracy: 1e-5, "P ⊙ Z recomputed") }
        let dP = scores.map { $0 * 0.5 }, delta = (0..<(2 * hq * tq)).map { Float($0) * 0.01 }
        let gradient: [Float] = try module.launch("attention_score_gradient", grid: (hq * tq, 1, 1), [
            .readWriteArray(undropped), .inputArray(dP), .inputArray(delta),
            .int64(tq), .int64(tk), .int64(hq), .int64(b), .int32(0), .float(0.25), .int64(limit),
        ] + arguments)[0]!.elements()
        for row in 0..<(hq * tq) {
            let (h, i) = (row / tq, row % tq)
            for j in 0..<limit {
                let e = row * tk + j
                let expected = undropped[e] * (factors[e] * dP[e] - delta[(b * tq + i) * hq + h]) * 0.25
                XCTAssertEqual(gradient[e], expected, accuracy: 1e-5, "dS row \(row) key \(j)")
            }
        }
    }

    /// Greedy decoding's argmax over rows of logits (several blocks' worth of columns, ties to the first, NaNs passed
    /// over, rows past the grid by striding) matches the CPU backend's, bf16 and float32.
    func testArgmaxRowsMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        for dtype in [DType.bfloat16, .float32] {
            let module = try EmulatedModule(family: .decoding, dtype: dtype, kernels: ["argmax_rows": 4])
            var generator = SeededGenerator(seed: 23)
            let (rows, columns) = (5, 1001)
            var values = try cpu.floats(cpu.randomNormal([rows, columns], dtype: dtype, using: &generator))
            for column in [17, 600, 999] { values[columns + column] = 9 }  // row 1: a three-way tie
            for column in 0..<columns { values[2 * columns + column] = column % 2 == 0 ? .nan : -.infinity }  // row 2: NaN never wins
            values[3 * columns + 1000] = 50  // row 3: the last column
            let logits = try cpu.tensor(values, shape: [rows, columns], dtype: dtype)
            let expected = try cpu.int32s(cpu.argmaxRows(logits))
            XCTAssertEqual(Array(expected[1...3]), [17, 1, 1000], "\(dtype): ties to the first, past NaNs, the last column")
            let out = try module.launch("argmax_rows", grid: (2, 1, 1), [
                .input(try Self.raw(logits, cpu)), .output(bytes: rows * 4), .int64(rows), .int64(columns),
            ])
            XCTAssertEqual(out[1]!.elements() as [Int32], expected, "\(dtype)")
        }
    }

    /// The embedding gradient by id segments (one block per distinct id, tokens in order), repeated ids
    /// included, added to the existing gradient, against the CPU backend.
    func testEmbeddingGradientBySegmentsMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(family: .loss, dtype: .float32, kernels: ["embedding_backward": 7])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 18)
        let (vocabulary, columns) = (40, 300)  // 300 columns: a second block of columns, partly used
        let tokenIDs: [Int32] = [5, 17, 5, 39, 0, 17, 5, 22]
        let dy = try cpu.randomNormal([tokenIDs.count, columns], dtype: .float32, using: &generator)
        let start = try cpu.randomNormal([vocabulary, columns], dtype: .float32, using: &generator)
        let expected = try cpu.cast(start, to: .float32)
        try cpu.embeddingBackward(dy, ids: try cpu.tensor(tokenIDs, shape: [tokenIDs.count]), into: expected)
        let segments = EmbeddingSegments(tokenIDs: tokenIDs, vocabulary: vocabulary)
        let count = segments.ids.count
        let out = try module.launch("embedding_backward", grid: (count, (columns + 255) / 256, 1), [
            .inputArray(try cpu.floats(dy)), .inputArray(segments.ids), .inputArray(segments.starts), .inputArray(segments.positions),
            .readWriteArray(try cpu.floats(start)), .int64(count), .int64(columns),
        ])
        try Self.assertClose(out[4]!.elements(), try cpu.floats(expected), tolerance: 1e-6, "table gradient")
    }

    /// The tensor-core attention kernels (forward, δ, backward), with `mma.sync`, `ldmatrix` and `cp.async`
    /// emulated lane by lane from PTX's fragment layouts (`EmulatedModule.tensorCoreHelpers`), against the CPU
    /// backend: every head dimension's default variants at grouped-query shapes, causal and not, sequences that end
    /// inside a tile, several key blocks, queries that are the last of more keys; every other variant at one shape;
    /// dropped probabilities (the CPU's mask) on a padded batch and a causal one.
    func testTensorCoreAttentionMatchesTheCPUBackend() throws {
        typealias Kernels = TensorCoreAttentionKernels
        var kernels: [String: Int] = [:]
        for d in Kernels.headDimensions {
            for f in Kernels.forwardVariants[d] ?? [] { kernels[f.name] = 17 }
            for b in Kernels.backwardVariants[d] ?? [] { kernels[b.name] = 21 }
            kernels["attention_delta_tc_d\(d)"] = 4
        }
        let module = try EmulatedModule(
            source: EmulatedModule.withEmulatedTensorCores(KernelFamily.attentionTensorCore.translationUnit(for: .bfloat16)), kernels: kernels)
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 16)
        for d in Kernels.headDimensions {
            var shapes = [
                AttentionShape(batch: 1, queryLength: 136, queryHeads: 2, keyValueHeads: 1, headDimension: d),
                AttentionShape(batch: 1, queryLength: 40, keyLength: 150, queryHeads: 2, keyValueHeads: 1, headDimension: d, causal: false),
                AttentionShape(batch: 2, queryLength: 40, keyLength: 72, queryHeads: 2, keyValueHeads: 2, headDimension: d),
            ]
            // An encoder's padded batch (BERT's head dimension, and the widest tiles): the second element's 19 keys end
            // inside a key tile, and whole key blocks past them see no query.
            if d == 64 || d == 256 {
                shapes.append(AttentionShape(batch: 2, queryLength: 72, queryHeads: 2, keyValueHeads: 1, headDimension: d, causal: false, keyLengths: [72, 19]))
            }
            // BERT's training: attention probabilities dropped, padded and not, causal and not; and an encoder's unpadded
            // rows packed (three sequences ending inside tiles, a row no sequence owns after them).
            if d == 64 {
                shapes.append(AttentionShape(batch: 3, queryLength: 72, queryHeads: 2, keyValueHeads: 1, headDimension: d, causal: false,
                                             keyLengths: [72, 19, 40], dropout: SeededDropout(probability: 0.2, seed: 0xB0D), packedRows: 132))
                shapes.append(AttentionShape(batch: 2, queryLength: 72, queryHeads: 2, keyValueHeads: 1, headDimension: d, causal: false,
                                             keyLengths: [72, 19], dropout: SeededDropout(probability: 0.2, seed: 0xB0B)))
                shapes.append(AttentionShape(batch: 1, queryLength: 80, queryHeads: 2, keyValueHeads: 2, headDimension: d,
                                             dropout: SeededDropout(probability: 0.5, seed: 0xB0C)))
            }
            let (forwards, backwards) = (try XCTUnwrap(Kernels.forwardVariants[d]), try XCTUnwrap(Kernels.backwardVariants[d]))
            for (index, s) in shapes.enumerated() {
                // Every variant at the first shape, the defaults at the others.
                let pairs = index == 0 ? (0..<max(forwards.count, backwards.count)).map { (min($0, forwards.count - 1), min($0, backwards.count - 1)) } : [(0, 0)]
                let rows = s.queryRows, keyRows = s.keyRows
                let q = try cpu.randomNormal([rows, s.queryHeads * d], dtype: .bfloat16, using: &generator)
                let k = try cpu.randomNormal([keyRows, s.keyValueHeads * d], dtype: .bfloat16, using: &generator)
                let v = try cpu.randomNormal([keyRows, s.keyValueHeads * d], dtype: .bfloat16, using: &generator)
                let dout = try cpu.randomNormal([rows, s.queryHeads * d], dtype: .bfloat16, using: &generator)
                let expected = try cpu.attention(query: q, key: k, value: v, shape: s)
                let gradients = try cpu.attentionBackward(dout, query: q, key: k, value: v, saved: expected, shape: s)
                let sizes: [EmulatedModule.Argument] = [
                    .int32(s.batch), .int32(s.queryLength), .int32(s.keyLength), .int32(s.queryHeads), .int32(s.keyValueHeads),
                    .int32(s.causal ? 1 : 0), .float(s.scale), s.keyLengths.map { .inputArray($0.map(Int32.init)) } ?? .int64(0),
                    .int64(Int(truncatingIfNeeded: s.dropout?.seed ?? 0)), .int32(Int(s.dropout?.threshold ?? 0)),
                    .float(Float(s.dropout?.keptScale ?? 1)),
                    s.packedRows == nil ? .int64(0) : .inputArray(s.rowLayout().map { Int32($0.queryStart) }),
                ]
                let (qBytes, kBytes, vBytes, dBytes) = (try Self.raw(q, cpu), try Self.raw(k, cpu), try Self.raw(v, cpu), try Self.raw(dout, cpu))
                // Outputs start as NaN, so a place the kernels should write and do not shows; with packed rows the host
                // zeroes them first (rows no sequence owns are never written), and so does this test.
                func fresh(_ bytes: Int) -> EmulatedModule.Argument {
                    s.packedRows == nil ? .output(bytes: bytes) : .readWriteArray([UInt8](repeating: 0, count: bytes))
                }
                for (f, b) in pairs.map({ (forwards[$0.0], backwards[$0.1]) }) {
                    let what = "d = \(d), \(s), \(f.name), \(b.name)"
                    let out = try module.launch(f.name, grid: ((s.queryLength + f.rowsPerBlock - 1) / f.rowsPerBlock, s.queryHeads, s.batch),
                                                block: f.threads, [
                        .input(qBytes), .input(kBytes), .input(vBytes), fresh(qBytes.count), fresh(rows * s.queryHeads * 4),
                    ] + sizes)
                    let (o, lse) = (out[3]!, out[4]!)
                    try Self.assertClose(Self.bf16(o), try cpu.floats(expected.output), tolerance: 2e-2, "forward O, \(what)")
                    try Self.assertClose(lse.elements(), try cpu.floats(expected.logSumExp), tolerance: 1e-3, "forward log-sum-exp, \(what)")
                    let lanes = Kernels.deltaLanes(headDimension: d)
                    let deltas = try module.launch("attention_delta_tc_d\(d)", grid: ((rows * s.queryHeads * lanes + 255) / 256, 1, 1), [
                        .input(dBytes), .input(o), .output(bytes: rows * s.queryHeads * 4), .int64(rows * s.queryHeads),
                    ])[2]!
                    let backward = try module.launch(
                        b.name, grid: ((s.keyLength + b.keysPerBlock - 1) / b.keysPerBlock, s.keyValueHeads, s.batch), block: b.threads, [
                            .input(qBytes), .input(kBytes), .input(vBytes), .input(dBytes), .input(lse), .input(deltas),
                            .readWriteArray([Float](repeating: 0, count: rows * s.queryHeads * d)),
                            fresh(kBytes.count), fresh(vBytes.count),
                        ] + sizes)
                    try Self.assertClose(backward[6]!.elements(), try cpu.floats(gradients.query), tolerance: 3e-2, "dQ, \(what)")
                    try Self.assertClose(Self.bf16(backward[7]!), try cpu.floats(gradients.key), tolerance: 3e-2, "dK, \(what)")
                    try Self.assertClose(Self.bf16(backward[8]!), try cpu.floats(gradients.value), tolerance: 3e-2, "dV, \(what)")
                }
            }
        }
    }

    /// RoPE through its table: `rope_table` computes the rotations once (in double), `rope` applies them forward
    /// and back at positions past 5000 (LLaMA 3's base), against the CPU backend.
    func testRotaryEmbeddingThroughItsTableMatchesTheCPUBackend() throws {
        let module = try EmulatedModule(family: .attention, dtype: .float32, kernels: ["rope_table": 4, "rope": 10])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 21)
        let (rows, heads, d, seq, offset, base) = (12, 3, 16, 6, 5000, Float(500_000))
        let x = try cpu.randomNormal([rows, heads * d], dtype: .float32, using: &generator)
        let positions = offset + seq
        let table = try module.launch("rope_table", grid: ((positions * d / 2 + 255) / 256, 1, 1), [
            .output(bytes: positions * d / 2 * 8), .int64(positions), .int64(d), .float(base),
        ])[0]!
        for inverse in [false, true] {
            let layout = RotaryLayout(sequenceLength: seq, positionOffset: offset, headDimension: d, base: base)
            let expected = try cpu.rotaryEmbedding(x, layout: layout, inverse: inverse)
            let out = try module.launch("rope", grid: ((rows * heads * d / 2 + 255) / 256, 1, 1), [
                .inputArray(try cpu.floats(x)), .output(bytes: rows * heads * d * 4), .input(table), .int64(rows), .int64(heads),
                .int64(d), .int64(seq), .int64(offset), .float(inverse ? -1 : 1), .int64(0),
            ])
            try Self.assertClose(out[1]!.elements(), try cpu.floats(expected), tolerance: 1e-6, "rope, inverse \(inverse)")
        }
        // Every row at a position of its own (generation's packed rows), the table's last position included.
        let rowPositions = (0..<rows).map { ($0 * 1543) % positions }
        let atPositions = try cpu.rotaryEmbedding(x, layout: RotaryLayout(positions: rowPositions, headDimension: d, base: base), inverse: false)
        let out = try module.launch("rope", grid: ((rows * heads * d / 2 + 255) / 256, 1, 1), [
            .inputArray(try cpu.floats(x)), .output(bytes: rows * heads * d * 4), .input(table), .int64(rows), .int64(heads),
            .int64(d), .int64(1), .int64(0), .float(1), .inputArray(rowPositions.map(Int32.init)),
        ])
        try Self.assertClose(out[1]!.elements(), try cpu.floats(atPositions), tolerance: 1e-6, "rope at given positions")
        for row in [1, 7] {  // each row as rotated alone at its position
            let alone = try cpu.rotaryEmbedding(
                cpu.tensor(Array(try cpu.floats(x)[(row * heads * d)..<((row + 1) * heads * d)]), shape: [1, heads * d], dtype: .float32),
                layout: RotaryLayout(sequenceLength: 1, positionOffset: rowPositions[row], headDimension: d, base: base), inverse: false)
            XCTAssertEqual(Array(try cpu.floats(atPositions)[(row * heads * d)..<((row + 1) * heads * d)]), try cpu.floats(alone))
        }
    }

    /// SwiGLU's fused kernels (packs and a tail) against the CPU backend's composition of activation and
    /// multiply: h = act(g) ⊙ u, dg = act'(g) ⊙ u ⊙ dh, du = act(g) ⊙ dh; float32 and bf16, SiLU and GELU.
    func testGatedActivationMatchesTheComposedOps() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 22)
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .elementwise, dtype: dtype, kernels: [
                "gated_activation_forward": 5, "gated_activation_backward": 7,
            ])
            let n = 1003
            let (gate, up, dh) = (try cpu.randomNormal([n], std: 2, dtype: dtype, using: &generator),
                                  try cpu.randomNormal([n], dtype: dtype, using: &generator), try cpu.randomNormal([n], dtype: dtype, using: &generator))
            for (kind, code) in [(Activation.silu, 2), (.gelu, 0)] {
                let h = try cpu.gatedActivation(gate: gate, up: up, kind)
                let gradients = try cpu.gatedActivationBackward(gate: gate, up: up, gradient: dh, kind)
                let raw = (gate: try Self.raw(gate, cpu), up: try Self.raw(up, cpu), dh: try Self.raw(dh, cpu))
                let forward = try module.launch("gated_activation_forward", grid: ((n + 255) / 256, 1, 1), [
                    .input(raw.gate), .input(raw.up), .output(bytes: n * dtype.byteSize), .int64(n), .int32(code),
                ])[2]!
                let backward = try module.launch("gated_activation_backward", grid: ((n + 255) / 256, 1, 1), [
                    .input(raw.gate), .input(raw.up), .input(raw.dh), .output(bytes: n * dtype.byteSize), .output(bytes: n * dtype.byteSize),
                    .int64(n), .int32(code),
                ])
                func floats(_ data: Data) -> [Float] { dtype == .float32 ? data.elements() : Self.bf16(data) }
                let tolerance: Float = dtype == .float32 ? 1e-5 : 1.6e-2  // bf16: the composition rounds act(g) first
                try Self.assertClose(floats(forward), try cpu.floats(h), tolerance: tolerance, "\(dtype) \(kind) h")
                try Self.assertClose(floats(backward[3]!), try cpu.floats(gradients.gate), tolerance: tolerance, "\(dtype) \(kind) dgate")
                try Self.assertClose(floats(backward[4]!), try cpu.floats(gradients.up), tolerance: tolerance, "\(dtype) \(kind) dup")
            }
        }
    }

    /// The dropout kernel drops exactly the elements the CPU backend drops (one hash, computed alike) and scales the
    /// rest alike: float32 bit for bit, bf16 to its rounding. Launched as the backend does, a thread per 16-byte pack
    /// (`packedGrid`), the last elements past the packs taken by the element loop.
    func testDropoutDropsWhatTheCPUBackendDrops() throws {
        XCTAssertEqual(packedGrid(2051, elementBytes: 2).0, 2, "257 packs of 8 (the last one partial)")
        XCTAssertEqual(packedGrid(2051, elementBytes: 4).0, 3, "513 packs of 4")
        XCTAssertEqual(packedGrid(6656 * 4096, elementBytes: 2).0, 13_312, "a thread per pack, not per element")
        XCTAssertEqual(packedGrid(1, elementBytes: 2).0, 1)
        XCTAssertEqual(packedGrid(1 << 32, elementBytes: 2).0, 65_535, "capped: grid-stride loops do the rest")
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 31)
        for dtype in [DType.float32, .bfloat16] {
            let module = try EmulatedModule(family: .elementwise, dtype: dtype, kernels: ["dropout": 6])
            let n = 2051
            let x = try cpu.randomNormal([n], dtype: dtype, using: &generator)
            for (probability, seed) in [(0.1, UInt64(7)), (0.5, 0xFFFF_FFFF_0000_1234)] {
                let expected = try cpu.floats(cpu.dropout(x, probability: probability, seed: seed))
                let out = try module.launch("dropout", grid: packedGrid(n, elementBytes: dtype.byteSize), [
                    .input(try Self.raw(x, cpu)), .output(bytes: n * dtype.byteSize), .int64(n), .int64(Int(Int64(bitPattern: seed))),
                    .int32(Int(DropoutMask.threshold(probability: probability))), .float(Float(1 / (1 - probability))),
                ])[1]!
                let actual: [Float] = dtype == .float32 ? out.elements() : Self.bf16(out)
                XCTAssertEqual(actual.map { $0 == 0 }, expected.map { $0 == 0 }, "\(dtype) p \(probability): the same elements dropped")
                try Self.assertClose(actual, expected, tolerance: dtype == .float32 ? 0 : 8e-3, "\(dtype) p \(probability)")
            }
        }
    }

    /// LAMB's device-side step against the CPU backend's (which reads the two norms back): the ratio from the two
    /// sums of squares, and 1 when one of them is zero.
    func testTrustRatioStepMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 33)
        let module = try EmulatedModule(family: .elementwise, dtype: .float32, kernels: ["trust_ratio_step": 6])
        let n = 1500
        let x = try cpu.randomNormal([n], std: 0.5, dtype: .float32, using: &generator), update = try cpu.randomNormal([n], dtype: .float32, using: &generator)
        for updateSquares in [try cpu.sumOfSquares(update), try cpu.tensor([Float(0)], shape: [1], dtype: .float32)] {
            let expected = try cpu.cast(x, to: .float32)
            try cpu.trustRatioStep(expected, update: update, parameterSquares: cpu.sumOfSquares(x), updateSquares: updateSquares, rate: 0.02)
            let out = try module.launch("trust_ratio_step", grid: ((n + 255) / 256, 1, 1), [
                .readWrite(try Self.raw(x, cpu)), .input(try Self.raw(update, cpu)), .input(try Self.raw(cpu.sumOfSquares(x), cpu)),
                .input(try Self.raw(updateSquares, cpu)), .int64(n), .float(0.02),
            ])[0]!
            try Self.assertClose(out.elements(), try cpu.floats(expected), tolerance: 1e-6, "trust ratio step")
        }
    }

    /// `|actual − expected| ≤ tolerance · max(1, |expected|)` everywhere (bf16 results against float ones).
    static func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String) throws {
        XCTAssertEqual(actual.count, expected.count, what)
        let worst = zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst relative error \(worst)")
    }

    /// The optimizer kernels' `stochastic, rounding_seed` arguments.
    static func rounding(_ rounding: ParameterRounding) -> [EmulatedModule.Argument] {
        switch rounding {
        case .nearest: [.int32(0), .int32(0)]
        case .stochastic(let seed): [.int32(1), .int32(Int(Int32(bitPattern: seed)))]
        }
    }

    static func bf16(_ data: Data) -> [Float] { (data.elements() as [UInt16]).map { Float(bitPattern: UInt32($0) << 16) } }

    /// A CPU tensor's bytes as stored (bf16 as its 16-bit patterns).
    static func raw(_ tensor: Tensor, _ cpu: CPUBackend) throws -> Data {
        let storage = try XCTUnwrap(tensor.storage as? HostStorage)
        return Data(bytes: storage.pointer, count: tensor.byteCount)
    }

    /// Decoding's skinny 2:4 GEMM from bf16 values and 2-bit packed indices, against the CPU backend: 1, 3 and 8 tokens
    /// (one launch each), a row of fewer chunks than lanes and one of more than a warp's unrolled sweep (k = 48 and
    /// 2112), rows not a multiple of a block's warps; with a bias, adding into what Y holds, and the merged layer's
    /// float sums over [W; Lᵀ] finished by the low-rank epilogue.
    func testSkinnyTwoFourGEMMMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 24)
        let module = try EmulatedModule(
            family: .skinnySparse, dtype: .bfloat16, kernels: ["skinny_24_matmul": 11, "skinny_24_matmul_staged": 11, "skinny_low_rank_epilogue": 8])
        func random(_ shape: [Int]) throws -> Tensor { try cpu.randomNormal(shape, dtype: .bfloat16, using: &generator) }
        // Each product by both kernels: x read from L2 by every warp, and x staged in shared memory (two blocks of
        // 16 rows, so a block's copy of x serves several rows).
        var kernel = SkinnySparseGEMM.Kernel.plain
        func product(_ x: Tensor, _ w: CompressedMatrix, bias: Tensor?, y: Tensor?, sums: Bool) throws -> Data {
            let tokens = x.shape[0]
            let output: EmulatedModule.Argument = try y.map { .readWrite(try Self.raw($0, cpu)) } ?? .output(bytes: tokens * w.rows * 2)
            let floats: EmulatedModule.Argument = sums ? .output(bytes: tokens * w.rows * 4) : .int64(0)
            let grid = kernel == .plain ? SkinnySparseGEMM.grid(rows: w.rows) : SkinnySparseGEMM.stagedGrid(rows: w.rows, multiprocessors: 0)
            return try module.launch(kernel.name, grid: (min(grid.0, 2), 1, 1), block: kernel.threads, [
                .input(try Self.raw(x, cpu)), .input(try Self.raw(w.values, cpu)), .inputArray(Self.packedTwoBit(try cpu.uint8s(w.indices))),
                try bias.map { .input(try Self.raw($0, cpu)) } ?? .int64(0), sums ? .int64(0) : output, floats,
                .int64(tokens), .int64(w.rows), .int64(w.columns), .int64(w.rows), .int32(y == nil ? 0 : 1),
            ])[sums ? 5 : 4]!
        }
        let cases = [(1, 20, 48), (3, 9, 2112), (8, 17, 64)].flatMap { shape in
            [SkinnySparseGEMM.Kernel.plain, .staged].map { (shape.0, shape.1, shape.2, $0) }
        }
        for (tokens, rows, k, which) in cases {
            kernel = which
            let w = try cpu.compress(random([rows, k]), pattern: .twoFour, mask: nil)
            let x = try random([tokens, k]), bias = try random([rows]), y = try random([tokens, rows])
            let label = "\(tokens)×\(k)→\(rows) \(which)"
            try Self.assertClose(Self.bf16(product(x, w, bias: bias, y: nil, sums: false)),
                                 try cpu.floats(cpu.sparseMatmul(x, w, bias: bias)), tolerance: 3e-2, "\(label) with bias")
            let target = try cpu.cast(y, to: .bfloat16)
            try cpu.sparseMatmul(x, w, accumulatingInto: target)
            try Self.assertClose(Self.bf16(product(x, w, bias: nil, y: y, sums: false)), try cpu.floats(target), tolerance: 3e-2, "\(label) accumulating")
        }
        // The merged layer: [W; Lᵀ] (Lᵀ pruned 2:4 along the input) in one skinny pass, then the epilogue: one block
        // and one token chunk, and two blocks (the second partly past the outputs) over two chunks of 8 tokens with
        // a rank that leaves some of the 8 warps idle.
        for (tokens, inFeatures, outFeatures, rank) in [(5, 96, 24, 4), (11, 64, 80, 12)] {
            let scale = Float(0.5)
            let weight = try cpu.compress(random([outFeatures, inFeatures]), pattern: .twoFour, mask: nil)
            let down = try cpu.compress(random([rank, inFeatures]), pattern: .twoFour, mask: nil)
            let merged = try CompressedMatrix(
                rows: outFeatures + rank, columns: inFeatures, pattern: .twoFour,
                values: cpu.concatenateRows([weight.values, down.values]), indices: cpu.concatenateRows([weight.indices, down.indices]))
            let x = try random([tokens, inFeatures]), up = try random([rank, outFeatures]), bias = try random([outFeatures])
            let sums = try product(x, merged, bias: nil, y: nil, sums: true)
            let y = try module.launch(
                "skinny_low_rank_epilogue", grid: SkinnySparseGEMM.epilogueGrid(outFeatures: outFeatures), block: SkinnySparseGEMM.epilogueThreads, [
                    .input(sums), .input(try Self.raw(up, cpu)), .input(try Self.raw(bias, cpu)), .output(bytes: tokens * outFeatures * 2),
                    .int64(tokens), .int64(outFeatures), .int64(rank), .float(scale),
                ])[3]!
            // Against the CPU in float (the kernel keeps X·Wᵀ and X·L in float; only its output is rounded to bf16).
            func float32(_ tensor: Tensor) throws -> Tensor { try cpu.cast(tensor, to: .float32) }
            let merged32 = try CompressedMatrix(
                rows: merged.rows, columns: merged.columns, pattern: merged.pattern, values: float32(merged.values), indices: merged.indices)
            let expected = try cpu.mergedSparseLowRankMatmul(
                float32(x), merged: merged32, outFeatures: outFeatures, up: float32(up), scale: scale, bias: float32(bias))
            try Self.assertClose(Self.bf16(y), try cpu.floats(expected), tolerance: 1e-2, "merged \(tokens)×\(inFeatures)→\(outFeatures) r=\(rank)")
        }
    }

    /// The skinny 2:4 GEMM on sparse tensor cores (`mma.sp` emulated from PTX's operand layouts) against the CPU
    /// backend: 1 to 32 tokens (one to four n-tiles, the last partly empty), rows not a multiple of 16, k of one to
    /// six 128-column super-tiles shared by one to four warps (a warp with none, one with two, one with three: the next
    /// loaded while one is multiplied); with a bias, adding into Y, and as the merged layer's float sums.
    func testSkinnyTwoFourGEMMOnSparseTensorCoresMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 26)
        let module = try EmulatedModule(
            source: EmulatedModule.withEmulatedHelpers(KernelFamily.skinnySparseTensorCore.translationUnit(for: .bfloat16), EmulatedModule.sparseTensorCoreHelpers),
            kernels: ["skinny_24_mma": 11])
        func random(_ shape: [Int]) throws -> Tensor { try cpu.randomNormal(shape, dtype: .bfloat16, using: &generator) }
        for (tokens, rows, k, warps) in [(1, 20, 128, 1), (5, 17, 256, 2), (8, 33, 384, 2), (2, 16, 768, 2), (13, 16, 128, 4), (32, 9, 256, 3)] {
            let w = try cpu.compress(random([rows, k]), pattern: .twoFour, mask: nil)
            let x = try random([tokens, k]), bias = try random([rows]), y = try random([tokens, rows])
            let label = "\(tokens)×\(k)→\(rows), \(warps) warps"
            func product(bias: Tensor?, into y: Tensor?, sums: Bool) throws -> Data {
                let output: EmulatedModule.Argument = try y.map { .readWrite(try Self.raw($0, cpu)) } ?? .output(bytes: tokens * rows * 2)
                return try module.launch("skinny_24_mma", grid: ((rows + 15) / 16, 1, 1), block: 32 * warps, [
                    .input(try Self.raw(x, cpu)), .input(try Self.raw(w.values, cpu)), .inputArray(Self.packedTwoBit(try cpu.uint8s(w.indices))),
                    try bias.map { .input(try Self.raw($0, cpu)) } ?? .int64(0), sums ? .int64(0) : output,
                    sums ? .output(bytes: tokens * rows * 4) : .int64(0),
                    .int64(tokens), .int64(rows), .int64(k), .int64(rows), .int32(y == nil ? 0 : 1),
                ])[sums ? 5 : 4]!
            }
            try Self.assertClose(Self.bf16(product(bias: bias, into: nil, sums: false)),
                                 try cpu.floats(cpu.sparseMatmul(x, w, bias: bias)), tolerance: 3e-2, "\(label) with bias")
            let target = try cpu.cast(y, to: .bfloat16)
            try cpu.sparseMatmul(x, w, accumulatingInto: target)
            try Self.assertClose(Self.bf16(product(bias: nil, into: y, sums: false)), try cpu.floats(target), tolerance: 3e-2, "\(label) accumulating")
            let sums: [Float] = try product(bias: nil, into: nil, sums: true).elements()
            try Self.assertClose(sums, try cpu.floats(cpu.sparseMatmul(x, w, bias: nil)), tolerance: 3e-2, "\(label) float sums")
        }
        // Host side: the kernel takes whole 128-column super-tiles (the staged kernel runs otherwise), all 32 tokens in
        // one launch, and splits k over 4–16 warps (no more than there are super-tiles).
        XCTAssertEqual(SkinnySparseGEMM.Kernel.mma.effective(columns: 2048), .mma)
        XCTAssertEqual(SkinnySparseGEMM.Kernel.mma.effective(columns: 2112), .staged)
        XCTAssertEqual(SkinnySparseGEMM.Kernel.plain.effective(columns: 2112), .plain)
        XCTAssertEqual(SkinnySparseGEMM.tokensPerLaunch(.mma, columns: 8192, elementBytes: 2), 32)
        let opt = SkinnySparseGEMM.tensorCoreLaunch(tokens: 8, rows: 2048, columns: 8192, multiprocessors: 132, warpsPerMultiprocessor: 16)
        XCTAssertEqual([opt.grid, opt.warps, opt.sharedBytes], [128, 17, 17 * 16 * 8 * 4], "16 warps an SM over 132 SMs")
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 1, rows: 8192, columns: 2048, multiprocessors: 132, warpsPerMultiprocessor: 16).warps,
                       5, "16 warps an SM")
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 1, rows: 2048, columns: 8192, multiprocessors: 132, warpsPerMultiprocessor: 32).warps,
                       32, "32 warps an SM")
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 1, rows: 2048, columns: 8192, multiprocessors: 132, maximumWarps: 16).warps, 16,
                       "no more than the kernel's registers allow a block")
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 32, rows: 2048, columns: 8192, multiprocessors: 132, warpsPerMultiprocessor: 64).warps,
                       24, "no more than 48 KiB of partial sums")
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 1, rows: 65536, columns: 2048, multiprocessors: 132).warps, 4)
        XCTAssertEqual(SkinnySparseGEMM.tensorCoreLaunch(tokens: 32, rows: 2048, columns: 256, multiprocessors: 132).warps, 2)
    }

    /// The dense skinny GEMM against the CPU backend: 1, 5 and 8 tokens, rows of fewer chunks than lanes and of more
    /// than a warp's unrolled sweep (k = 40 and 2120), rows not a multiple of a block's warps; with and without a bias
    /// and ReLU.
    func testSkinnyDenseGEMMMatchesTheCPUBackend() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 25)
        let module = try EmulatedModule(family: .skinnySparse, dtype: .bfloat16, kernels: [SkinnyDenseGEMM.kernel: 8])
        func random(_ shape: [Int]) throws -> Tensor { try cpu.randomNormal(shape, dtype: .bfloat16, using: &generator) }
        for (tokens, rows, k) in [(1, 20, 40), (5, 9, 2120), (8, 37, 64)] {
            let x = try random([tokens, k]), w = try random([rows, k]), bias = try random([rows])
            for (withBias, relu) in [(true, false), (false, true), (true, true)] {
                let grid = SkinnySparseGEMM.stagedGrid(rows: rows, multiprocessors: 0)
                let y = try module.launch(SkinnyDenseGEMM.kernel, grid: (min(grid.0, 2), 1, 1), block: SkinnyDenseGEMM.threads, [
                    .input(try Self.raw(x, cpu)), .input(try Self.raw(w, cpu)), withBias ? .input(try Self.raw(bias, cpu)) : .int64(0),
                    .output(bytes: tokens * rows * 2), .int64(tokens), .int64(rows), .int64(k), .int32(relu ? 1 : 0),
                ])[3]!
                let expected = relu
                    ? try cpu.linearActivated(x, weight: w, bias: withBias ? bias : nil, .relu)
                    : try cpu.gemm(x, w, transposeA: false, transposeB: true, alpha: 1, beta: 0, into: nil, bias: withBias ? bias : nil)
                try Self.assertClose(Self.bf16(y), try cpu.floats(expected), tolerance: 3e-2, "\(tokens)×\(k)→\(rows) bias \(withBias) relu \(relu)")
                if relu { XCTAssertTrue(Self.bf16(y).allSatisfy { $0 >= 0 }) }
            }
        }
        // Host side: which products it takes and the decisions' keys.
        XCTAssertTrue(SkinnyDenseGEMM.applies(tokens: 1, columns: 2048, dtype: .bfloat16))
        XCTAssertTrue(SkinnyDenseGEMM.applies(tokens: 32, columns: 8, dtype: .float16))
        XCTAssertFalse(SkinnyDenseGEMM.applies(tokens: 33, columns: 2048, dtype: .bfloat16), "prefill-sized")
        XCTAssertFalse(SkinnyDenseGEMM.applies(tokens: 4, columns: 12, dtype: .bfloat16), "not whole 8-column chunks")
        XCTAssertFalse(SkinnyDenseGEMM.applies(tokens: 4, columns: 2048, dtype: .float32))
        // (SLOPE_DENSE_GEMM's values: BackendSettingsTests.)
        XCTAssertEqual(SkinnyDenseGEMM.key(tokens: 1, outFeatures: 8192, inFeatures: 2048, dtype: .bfloat16, bias: true, relu: true),
                       "dense-weight bfloat16 1x8192x2048 +bias +relu")
        XCTAssertNotEqual(SkinnyDenseGEMM.key(tokens: 1, outFeatures: 8, inFeatures: 8, dtype: .bfloat16, bias: false, relu: true),
                          SkinnyDenseGEMM.key(tokens: 1, outFeatures: 8, inFeatures: 8, dtype: .bfloat16, bias: false, relu: false))
    }

    /// The skinny route's host side: which products it takes, and its launches of at most 8 tokens.
    func testSkinnyRouteTakesFewTokensOfTwoFourSixteenBitMatrices() throws {
        XCTAssertTrue(SkinnySparseGEMM.applies(tokens: 1, pattern: .twoFour, columns: 2048, dtype: .bfloat16))
        XCTAssertTrue(SkinnySparseGEMM.applies(tokens: 32, pattern: .twoFour, columns: 16, dtype: .float16))
        XCTAssertFalse(SkinnySparseGEMM.applies(tokens: 33, pattern: .twoFour, columns: 2048, dtype: .bfloat16), "prefill-sized")
        XCTAssertFalse(SkinnySparseGEMM.applies(tokens: 0, pattern: .twoFour, columns: 2048, dtype: .bfloat16))
        XCTAssertFalse(SkinnySparseGEMM.applies(tokens: 4, pattern: try NMPattern(n: 2, m: 8), columns: 2048, dtype: .bfloat16))
        XCTAssertFalse(SkinnySparseGEMM.applies(tokens: 4, pattern: .twoFour, columns: 40, dtype: .bfloat16), "not whole 16-column chunks")
        XCTAssertFalse(SkinnySparseGEMM.applies(tokens: 4, pattern: .twoFour, columns: 2048, dtype: .float32))
        XCTAssertEqual(SkinnySparseGEMM.launches(tokens: 19).map { [$0.first, $0.count] }, [[0, 8], [8, 8], [16, 3]])
        XCTAssertEqual(SkinnySparseGEMM.launches(tokens: 8).map { [$0.first, $0.count] }, [[0, 8]])
        XCTAssertEqual(SkinnySparseGEMM.grid(rows: 17).0, 3)
        // The staged kernel keeps x in at most 96 KiB of shared memory: rows of 8192 bf16 take 6 tokens a launch.
        XCTAssertEqual(SkinnySparseGEMM.tokensPerLaunch(.staged, columns: 2048, elementBytes: 2), 8)
        XCTAssertEqual(SkinnySparseGEMM.tokensPerLaunch(.staged, columns: 8192, elementBytes: 2), 6)
        XCTAssertEqual(SkinnySparseGEMM.tokensPerLaunch(.staged, columns: 65536, elementBytes: 2), 1)
        XCTAssertEqual(SkinnySparseGEMM.tokensPerLaunch(.plain, columns: 65536, elementBytes: 2), 8)
        XCTAssertEqual(SkinnySparseGEMM.launches(tokens: 13, perLaunch: 6).map { [$0.first, $0.count] }, [[0, 6], [6, 6], [12, 1]])
        XCTAssertEqual(SkinnySparseGEMM.stagedGrid(rows: 8192, multiprocessors: 132).0, 512, "16 rows a block")
        XCTAssertEqual(SkinnySparseGEMM.stagedGrid(rows: 50_000, multiprocessors: 132).0, 528, "at most four blocks per SM")
    }

    /// Merged inference's stacked form: `append_pairs` joins [W | scale·Rᵀ] and [X | P] (pairs followed by two
    /// zeros, padded to a multiple of 64 columns), and one 2:4 GEMM over the joined matrices equals
    /// X·Wᵀ + scale·P·R + b — also for a 2:8 W, whose kept values the 2:4 compression must all keep.
    func testStackedMergedInferenceIsOneTwoFourGEMM() throws {
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 14)
        let module = try EmulatedModule(family: .layout, dtype: .float32, kernels: ["append_pairs": 7])
        func appendPairs(_ a: Tensor, _ b: Tensor, width: Int) throws -> Tensor {
            let (rows, ka, kb) = (a.shape[0], a.shape[1], b.shape[1])
            let joined: [Float] = try module.launch("append_pairs", grid: (3, 1, 1), [
                .inputArray(try cpu.floats(a)), .inputArray(try cpu.floats(b)), .output(bytes: rows * width * 4),
                .int64(rows), .int64(ka), .int64(kb), .int64(width),
            ])[2]!.elements()
            return try cpu.tensor(joined, shape: [rows, width], dtype: .float32)
        }
        for (tokens, inFeatures, outFeatures, rank, pattern) in [(24, 64, 40, 4, NMPattern.twoFour), (16, 128, 24, 6, try NMPattern(n: 2, m: 8))] {
            let w = try cpu.compress(cpu.randomNormal([outFeatures, inFeatures], dtype: .float32, using: &generator), pattern: pattern, mask: nil)
            let x = try cpu.randomNormal([tokens, inFeatures], dtype: .float32, using: &generator)
            let p = try cpu.randomNormal([tokens, rank], dtype: .float32, using: &generator)
            let up = try cpu.randomNormal([rank, outFeatures], dtype: .float32, using: &generator)
            let bias = try cpu.randomNormal([outFeatures], dtype: .float32, using: &generator)
            let scale = 0.75
            let width = CUDABackend.stackedWidth(inFeatures: inFeatures, rank: rank)

            let joinedX = try appendPairs(x, p, width: width)
            let xValues = try cpu.floats(x), pValues = try cpu.floats(p), joinedValues = try cpu.floats(joinedX)
            for row in 0..<tokens {
                let joinedRow = Array(joinedValues[(row * width)..<((row + 1) * width)])
                var expectedRow = Array(xValues[(row * inFeatures)..<((row + 1) * inFeatures)])
                for pair in 0..<(rank / 2) { expectedRow += [pValues[row * rank + 2 * pair], pValues[row * rank + 2 * pair + 1], 0, 0] }
                expectedRow += Array(repeating: 0, count: width - expectedRow.count)
                XCTAssertEqual(joinedRow, expectedRow, "row \(row) of [X | P̃]")
            }
            let weight = try cpu.compress(appendPairs(cpu.decompress(w), cpu.scale(cpu.transpose(up), by: scale), width: width), pattern: .twoFour, mask: nil)
            let stacked = try cpu.floats(cpu.sparseMatmul(joinedX, weight, bias: bias))
            let expected = try cpu.add(cpu.sparseMatmul(x, w, bias: bias), cpu.scale(cpu.matmul(p, up), by: scale))
            try Self.assertClose(stacked, try cpu.floats(expected), tolerance: 1e-5, "\(tokens)×\(inFeatures)→\(outFeatures) r=\(rank) \(pattern)")
        }
    }

    /// The learned value map packed to 16 bits: for a tiled layout (cuSPARSELt's kind: tiles of 16 rows × 16
    /// slots, tile after tile) the offsets repeat block after block, and one block of them drives the scatter;
    /// a layout shuffled within blocks is found not to repeat and keeps one offset per position. Gathering back
    /// through either map (how W's evicted values are restored from cuSPARSELt's copy) gives the values again.
    func testPackedValueMapsScatterLikeTheFullMap() throws {
        let module = try EmulatedModule(family: .compressedLayout, dtype: .float32, kernels: [
            "check_block_offsets": 4, "check_periodic_offsets": 4, "pack_block_offsets": 6, "scatter_values_packed": 7,
            "gather_values_packed": 7, "scatter_values": 4, "gather_values": 4,
        ])
        let (rows, slotsPerRow, tile) = (64, 32, 16)
        var tiled: [UInt32] = []
        for tileRow in 0..<(rows / tile) {
            for tileColumn in 0..<(slotsPerRow / tile) {
                for r in 0..<tile { for c in 0..<tile { tiled.append(UInt32((tileRow * tile + r) * slotsPerRow + tileColumn * tile + c)) } }
            }
        }
        var generator = SeededGenerator(seed: 15)
        var shuffled = Array(0..<UInt32(rows * slotsPerRow))
        for start in stride(from: 0, to: shuffled.count, by: 64) { shuffled[start..<(start + 64)].shuffle(using: &generator) }
        let count = tiled.count
        let values = (0..<count).map { Float($0) * 0.5 - 7 }
        XCTAssertEqual(CUDABackend.packedMapGrid(count: count).0, 1, "2,048 positions: 256 threads of 8 (launched so below)")
        XCTAssertEqual(CUDABackend.packedMapGrid(count: 2049).0, 9, "not a multiple of 8: a thread a position")
        func holds(_ kernel: String, _ map: [UInt32], _ log2Block: Int) throws -> Bool {
            let bad: [Int32] = try module.launch(kernel, grid: (2, 1, 1), [
                .inputArray(map), .readWriteArray([Int32(0)]), .int64(count), .int32(log2Block),
            ])[1]!.elements()
            return bad[0] == 0
        }
        for (name, map) in [("tiled", tiled), ("shuffled", shuffled)] {  // the full map, both ways
            let scattered: [Float] = try module.launch("scatter_values", grid: (2, 1, 1), [
                .inputArray(values), .inputArray(map), .output(bytes: count * 4), .int64(count),
            ])[2]!.elements()
            XCTAssertEqual(scattered, map.map { values[Int($0)] }, "\(name): scatter through the full map")
            let gathered: [Float] = try module.launch("gather_values", grid: (2, 1, 1), [
                .inputArray(scattered), .inputArray(map), .output(bytes: count * 4), .int64(count),
            ])[2]!.elements()
            XCTAssertEqual(gathered, values, "\(name): gathering back through the full map undoes the scatter")
        }
        for (name, map, expectPeriodic) in [("tiled", tiled, true), ("shuffled", shuffled, false)] {
            for log2Block in [6, 8] {
                XCTAssertTrue(try holds("check_block_offsets", map, log2Block), "\(name): offsets fit int16")
                let periodic = try holds("check_periodic_offsets", map, log2Block)
                XCTAssertEqual(periodic, expectPeriodic, "\(name), blocks of \(1 << log2Block)")
                let packing = SparseOperandCache.Packing.Candidate(log2Block: log2Block, periodic: periodic)
                let block = 1 << log2Block, offsetCount = packing.offsets(count: count)
                let packed = try module.launch("pack_block_offsets", grid: (2, 1, 1), [
                    .inputArray(map), .output(bytes: count / block * 4), .output(bytes: offsetCount * 2), .int64(count), .int32(log2Block),
                    .int64(offsetCount),
                ])
                let scattered: [Float] = try module.launch("scatter_values_packed", grid: CUDABackend.packedMapGrid(count: count), [
                    .inputArray(values), .input(packed[1]!), .input(packed[2]!), .output(bytes: count * 4), .int64(count), .int32(log2Block),
                    .int64(Int(packing.offsetMask)),
                ])[3]!.elements()
                XCTAssertEqual(scattered, map.map { values[Int($0)] }, "\(name), blocks of \(1 << log2Block): scatter through the packed map")
                let gathered: [Float] = try module.launch("gather_values_packed", grid: CUDABackend.packedMapGrid(count: count), [
                    .inputArray(scattered), .input(packed[1]!), .input(packed[2]!), .output(bytes: count * 4), .int64(count), .int32(log2Block),
                    .int64(Int(packing.offsetMask)),
                ])[3]!.elements()
                XCTAssertEqual(gathered, values, "\(name), blocks of \(1 << log2Block): gathering back undoes the scatter")
            }
        }
    }

    /// The same copies for bf16, whose packs hold 8 values (one per position a thread takes): a tiled map
    /// (periodic at blocks of 64 positions) scatters and gathers back exactly.
    func testPackedValueMapsMoveBF16ValuesBothWays() throws {
        let module = try EmulatedModule(family: .compressedLayout, dtype: .bfloat16, kernels: [
            "pack_block_offsets": 6, "scatter_values_packed": 7, "gather_values_packed": 7,
        ])
        let (tile, tiles) = (64, 16)
        var generator = SeededGenerator(seed: 18)
        let within = Array(0..<UInt32(tile)).shuffled(using: &generator)
        let map = (0..<(tile * tiles)).map { UInt32($0 / tile * tile) + within[$0 % tile] }
        let count = map.count
        let values = (0..<count).map { Float($0 % 200 - 100) }  // integers: exact in bf16
        let bits = values.map { UInt16($0.bitPattern >> 16) }
        let packing = SparseOperandCache.Packing.Candidate(log2Block: 6, periodic: true)
        let packed = try module.launch("pack_block_offsets", grid: (2, 1, 1), [
            .inputArray(map), .output(bytes: tiles * 4), .output(bytes: tile * 2), .int64(count), .int32(6), .int64(packing.offsets(count: count)),
        ])
        let scattered = try module.launch("scatter_values_packed", grid: (2, 1, 1), [
            .inputArray(bits), .input(packed[1]!), .input(packed[2]!), .output(bytes: count * 2), .int64(count), .int32(6),
            .int64(Int(packing.offsetMask)),
        ])[3]!
        XCTAssertEqual(Self.bf16(scattered), map.map { values[Int($0)] }, "scatter through the packed map")
        let gathered = try module.launch("gather_values_packed", grid: (2, 1, 1), [
            .input(scattered), .input(packed[1]!), .input(packed[2]!), .output(bytes: count * 2), .int64(count), .int32(6),
            .int64(Int(packing.offsetMask)),
        ])[3]!
        XCTAssertEqual(Self.bf16(gathered), values, "gathering back undoes the scatter")
    }

    /// The transpose from cuSPARSELt's copy of W straight into its copy of Wᵀ (`transpose_copy_tiled`), with copies
    /// laid out as 16 × 16 tiles of slots — row-major inside a tile (runs of 8 slots together: vectors) and
    /// column-major (no runs: one slot at a time): the inverse maps are made by `invert_map`, checked by
    /// `check_runs` and packed periodically, and Wᵀ's copy read back through its map equals the CPU backend's
    /// double-pruned transpose of the new W, for indices one per byte and packed at 2 bits.
    func testTransposeBetweenCompressedCopiesMatchesTheCPUBackend() throws {
        let layout = try EmulatedModule(family: .compressedLayout, dtype: .float32, kernels: [
            "invert_map": 3, "check_runs": 4, "check_periodic_offsets": 4, "pack_block_offsets": 6,
        ])
        let sparsity = try EmulatedModule(family: .sparsity, dtype: .float32, kernels: ["transpose_copy_tiled": 19])
        let cpu = CPUBackend()
        var generator = SeededGenerator(seed: 21)
        let (rows, columns) = (64, 256)
        let dense = try cpu.randomNormal([rows, columns], dtype: .float32, using: &generator)
        let w = try cpu.compress(dense, pattern: .twoFour, mask: nil)
        let transposed = try cpu.doublePrunedTranspose(of: w)
        try cpu.scaleInPlace(w.values, by: -2)
        try cpu.refreshDoublePrunedTranspose(transposed, from: w)
        let expected = try cpu.floats(transposed.values)
        let wValues = try cpu.floats(w.values)
        let (wIndices, tIndices) = (try cpu.uint8s(w.indices), try cpu.uint8s(transposed.indices))

        /// Position → slot of a [slotRows, slotColumns] matrix stored as 16 × 16 tiles in row-major tile order.
        func tiledMap(slotRows: Int, slotColumns: Int, rowMajorInside: Bool) -> [UInt32] {
            var map: [UInt32] = []
            for tileRow in 0..<(slotRows / 16) {
                for tileColumn in 0..<(slotColumns / 16) {
                    for a in 0..<16 {
                        for b in 0..<16 {
                            let (r, c) = rowMajorInside ? (a, b) : (b, a)
                            map.append(UInt32((tileRow * 16 + r) * slotColumns + tileColumn * 16 + c))
                        }
                    }
                }
            }
            return map
        }
        /// The inverse of `map`, by the kernels, packed at blocks of 64 slots; and whether runs of 8 hold.
        func inverse(_ map: [UInt32]) throws -> (bases: Data, offsets: Data, runs: Bool) {
            let count = map.count
            let inverted = try layout.launch("invert_map", grid: (2, 1, 1), [.inputArray(map), .output(bytes: count * 4), .int64(count)])[1]!
            var expectedInverse = [UInt32](repeating: 0, count: count)
            for (p, slot) in map.enumerated() { expectedInverse[Int(slot)] = UInt32(p) }
            XCTAssertEqual(inverted.elements() as [UInt32], expectedInverse)
            func holds(_ kernel: String, _ argument: Int) throws -> Bool {
                let bad: [Int32] = try layout.launch(kernel, grid: (2, 1, 1), [.input(inverted), .readWriteArray([Int32(0)]), .int64(count), .int32(argument)])[1]!.elements()
                return bad[0] == 0
            }
            XCTAssertTrue(try holds("check_periodic_offsets", 6), "the tiled layouts' inverses repeat every 64 slots")
            let packed = try layout.launch("pack_block_offsets", grid: (2, 1, 1), [
                .input(inverted), .output(bytes: count / 64 * 4), .output(bytes: 64 * 2), .int64(count), .int32(6), .int64(64),
            ])
            return (packed[1]!, packed[2]!, try holds("check_runs", 8))
        }
        for rowMajorInside in [true, false] {
            let wMap = tiledMap(slotRows: rows, slotColumns: columns / 2, rowMajorInside: rowMajorInside)
            let tMap = tiledMap(slotRows: columns, slotColumns: rows / 2, rowMajorInside: rowMajorInside)
            let wCopy = wMap.map { wValues[Int($0)] }
            let (wInverse, tInverse) = (try inverse(wMap), try inverse(tMap))
            XCTAssertEqual(wInverse.runs, rowMajorInside, "runs of 8 slots stay together only row-major inside a tile")
            XCTAssertEqual(tInverse.runs, rowMajorInside)
            for bits in [(w: 8, t: 8), (w: 2, t: 2)] {
                let outputs = try sparsity.launch("transpose_copy_tiled", grid: ((columns + 63) / 64, (rows + 63) / 64, 1), [
                    .inputArray(wCopy), .input(wInverse.bases), .input(wInverse.offsets), .int32(6), .int64(63),
                    .inputArray(bits.w == 2 ? Self.packedTwoBit(wIndices) : wIndices), .inputArray(bits.t == 2 ? Self.packedTwoBit(tIndices) : tIndices),
                    .output(bytes: expected.count * 4), .input(tInverse.bases), .input(tInverse.offsets), .int32(6), .int64(63),
                    .int64(rows), .int64(columns), .int32(2), .int32(4), .int32(bits.w), .int32(bits.t), .int32(rowMajorInside ? 8 : 1),
                ])
                let tCopy: [Float] = outputs[7]!.elements()
                var actual = [Float](repeating: .nan, count: expected.count)
                for (p, slot) in tMap.enumerated() { actual[Int(slot)] = tCopy[p] }
                let mismatches = zip(actual, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                XCTAssertEqual(mismatches, 0, "row-major inside: \(rowMajorInside), index bits \(bits): \(mismatches) of \(expected.count) differ")
            }
        }
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
