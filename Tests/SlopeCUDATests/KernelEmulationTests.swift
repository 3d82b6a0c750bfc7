import Foundation
@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Kernels whose correctness hinges on block-level cooperation (shared-memory tiles, barriers), run on the CPU:
/// the kernel source is compiled as host C++ with `HostEmulation.shim` (one OS thread per CUDA thread, a real
/// barrier for `__syncthreads`, function-local statics for `__shared__`, one block at a time) and its output
/// compared with the CPU backend's. This is how CI checks a kernel change before any GPU has run it.
final class KernelEmulationTests: XCTestCase {
    /// The tiled double-pruned-transpose refresh over its three paths (8, 4 and 1 slots per thread), whole and
    /// part 64 × 64 tiles, and patterns whose rows hold 16, 32 and 48 slots per tile row.
    func testTiledTransposeRefreshMatchesTheCPUBackend() throws {
        let emulator = try HostEmulation(kernelSource: KernelFamily.sparsity.translationUnit(for: .float32), harness: Self.transposeHarness)
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

            let output = try emulator.run(
                arguments: ["\(rows)", "\(columns)", "\(pattern.n)", "\(pattern.m)", "\(expected.count)"],
                inputs: [
                    "w_values": Self.bytes(try cpu.floats(w.values)), "w_indices": Data(try cpu.uint8s(w.indices)),
                    "t_indices": Data(try cpu.uint8s(transposed.indices)),
                ],
                output: "t_values")
            let actual = output.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(actual.count, expected.count, "\(rows)×\(columns) \(pattern)")
            let mismatches = zip(actual, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(mismatches, 0, "\(rows)×\(columns) \(pattern): \(mismatches) of \(expected.count) slots differ")
        }
    }

    /// The emulation can fail: a kernel that skips its barrier reads a tile other threads have not written.
    func testAMissingBarrierIsCaught() throws {
        let racy = """
            extern "C" __global__ void reverse(const float* x, float* y) {
                __shared__ float tile[256];
                tile[threadIdx.x] = x[threadIdx.x];
                y[threadIdx.x] = tile[255 - threadIdx.x];
            }
            """
        let harness = """
            int main(int argc, char** argv) {
                std::vector<float> x(256), y(256);
                for (int i = 0; i < 256; ++i) x[i] = (float)i;
                emulate_launch(dim3{1, 1, 1}, 256, [&] { reverse(x.data(), y.data()); });
                int wrong = 0;
                for (int i = 0; i < 256; ++i) wrong += y[i] != (float)(255 - i);
                std::printf("%d\\n", wrong);
                return 0;
            }
            """
        let emulator = try HostEmulation(kernelSource: racy, harness: harness, threadsStartTogether: false)
        let printed = try emulator.runPrinting(arguments: [])
        XCTAssertNotEqual(Int(printed.trimmingCharacters(in: .whitespacesAndNewlines)), 0, "threads started one after another must see unwritten slots")
    }

    static func bytes(_ values: [Float]) -> Data { values.withUnsafeBytes { Data($0) } }

    /// `main` for gather_transpose_tiled: argv = dout din n m t_count; reads w_values, w_indices, t_indices from
    /// the working folder, writes t_values.
    static let transposeHarness = #"""
        int main(int argc, char** argv) {
            long long dout = atoll(argv[1]), din = atoll(argv[2]), t_count = atoll(argv[5]);
            int n = atoi(argv[3]), m = atoi(argv[4]);
            std::vector<char> w_values = read_file("w_values"), w_indices = read_file("w_indices"), t_indices = read_file("t_indices");
            float* wv = (float*)aligned_copy(w_values);
            unsigned char* wi = (unsigned char*)aligned_copy(w_indices);
            unsigned char* ti = (unsigned char*)aligned_copy(t_indices);
            float* tv = (float*)aligned_alloc(64, ((t_count * 4 + 63) / 64) * 64);
            for (long long i = 0; i < t_count; ++i) tv[i] = __uint_as_float(0x7FC00001u);  // a NaN no path writes
            dim3 grid{(unsigned)((din + 63) / 64), (unsigned)((dout + 63) / 64), 1};
            emulate_launch(grid, 256, [&] { gather_transpose_tiled(wv, wi, ti, tv, dout, din, n, m); });
            write_file("t_values", tv, t_count * 4);
            return 0;
        }
        """#
}

/// Compiles a kernel source plus a `main` as host C++ (clang++, or clang with libstdc++) in a scratch folder.
final class HostEmulation {
    let folder: URL
    let binary: URL

    /// With `threadsStartTogether` false, each emulated thread runs to completion before the next starts (no
    /// barrier can be honoured then; only for showing that a missing barrier is caught).
    init(kernelSource: String, harness: String, threadsStartTogether: Bool = true) throws {
        guard let clang = KernelSyntaxTests.executable("clang++") ?? KernelSyntaxTests.executable("clang") else {
            throw XCTSkip("no clang on PATH: kernels were not emulated")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-kernel-emulation-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = folder.appendingPathComponent("kernel.cpp")
        binary = folder.appendingPathComponent("kernel")
        let text = Self.shim(sequential: !threadsStartTogether) + "\n" + kernelSource + "\n" + harness + "\n"
        try text.write(to: source, atomically: true, encoding: .utf8)
        let (status, output) = try KernelSyntaxTests.run(clang, [
            "-x", "c++", "-std=c++17", "-O1", "-pthread", "-w", source.path, "-o", binary.path, "-lstdc++", "-lm",
        ])
        guard status == 0 else {
            XCTFail("the kernel does not compile as host C++:\n\(output.prefix(4000))")
            throw XCTSkip("compile failure reported above")
        }
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    /// Writes `inputs` into the folder, runs the binary there, returns the file it wrote as `output`.
    func run(arguments: [String], inputs: [String: Data], output: String) throws -> Data {
        for (name, data) in inputs { try data.write(to: folder.appendingPathComponent(name)) }
        _ = try runPrinting(arguments: arguments)
        return try Data(contentsOf: folder.appendingPathComponent(output))
    }

    func runPrinting(arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw HostEmulationError(output: text, status: process.terminationStatus) }
        return text
    }

    struct HostEmulationError: Error, CustomStringConvertible {
        let output: String
        let status: Int32
        var description: String { "emulated kernel exited with \(status): \(output.prefix(2000))" }
    }

    /// What NVRTC provides implicitly, as host C++: CUDA's qualifiers, thread and block indices per OS thread,
    /// `__syncthreads` as a barrier over the block's threads, and the intrinsics the prelude uses. Warp
    /// shuffles and atomics are declared only (a kernel that needs them cannot be emulated here).
    static func shim(sequential: Bool) -> String {
        #"""
        #include <cmath>
        #include <condition_variable>
        #include <cstdio>
        #include <cstdlib>
        #include <cstring>
        #include <fstream>
        #include <iterator>
        #include <mutex>
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
        // Warp-level operations cannot be emulated thread by thread: a kernel that reaches one stops the run.
        template <typename V> V __shfl_xor_sync(unsigned, V, int) { std::fprintf(stderr, "warp shuffle\n"); std::abort(); }
        template <typename V> V __shfl_sync(unsigned, V, int) { std::fprintf(stderr, "warp shuffle\n"); std::abort(); }
        inline int __syncthreads_or(int) { std::fprintf(stderr, "__syncthreads_or\n"); std::abort(); }
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
        static EmulatedBarrier* emulated_barrier = nullptr;
        void __syncthreads() { if (emulated_barrier) emulated_barrier->wait(); }

        // Runs body as every thread of every block of grid, one block at a time.
        template <typename F> void emulate_launch(dim3 grid, unsigned threads, F body) {
            gridDim = grid; blockDim = dim3{threads, 1, 1};
            for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
                EmulatedBarrier barrier(threads);
                emulated_barrier = \#(sequential ? "nullptr" : "&barrier");
                std::vector<std::thread> block;
                for (unsigned t = 0; t < threads; ++t) {
                    block.emplace_back([&, t] { threadIdx = dim3{t, 0, 0}; blockIdx = dim3{x, y, z}; body(); });
                    if (\#(sequential ? "true" : "false")) block.back().join();
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
