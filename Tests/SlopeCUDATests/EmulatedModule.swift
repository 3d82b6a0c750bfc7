import Foundation
@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Kernels compiled as host C++ (clang++, or clang with libstdc++) with `EmulatedModule.shim` — one OS thread per
/// CUDA thread, a real barrier for `__syncthreads`, function-local statics for `__shared__`, one block at a
/// time — each callable like a launch: arguments in the kernel's order, buffers passed as files to a runner.
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
        struct alignas(8) float2 { float x, y; };
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

extension EmulatedModule {
    /// The attention family with its PTX helpers (between the "PTX helpers" markers) swapped for host C++.
    static func withEmulatedTensorCores(_ source: String) throws -> String { try withEmulatedHelpers(source, tensorCoreHelpers) }

    /// `source` with the block between its "PTX helpers" markers swapped for `helpers`.
    static func withEmulatedHelpers(_ source: String, _ helpers: String) throws -> String {
        let begin = try XCTUnwrap(source.range(of: "// PTX helpers: begin"), "the kernel source lost its helper markers")
        let end = try XCTUnwrap(source.range(of: "// PTX helpers: end"), "the kernel source lost its helper markers")
        return String(source[..<begin.lowerBound]) + helpers + String(source[end.upperBound...])
    }

    /// bf16 only: `mma.sp.m16n8k32` with sparsity selector 0 as PTX's ISA lays out its operands (sparse-matrix
    /// fragments for m16n8k32 .bf16), written from the ISA independently of the kernel: with g = lane / 4 and t =
    /// lane % 4, D holds rows g (d0, d1) and g + 8 (d2, d3), columns 2t, 2t + 1. Row r's group c (columns 4c … 4c +
    /// 3) has its two kept values in lane 4(r % 8) + c % 4, register r / 8 + 2(c / 4) (low half first), and their
    /// positions in metadata bits 16(r / 8) + 4(c % 4) … + 3 of lane 4(r % 8) + c / 4 (the lower index in the low
    /// two bits); B's register j of lane l holds rows 8j + 2(l % 4) and + 1 of column l / 4. A metadata pair that is not
    /// strictly increasing is undefined on the device: the product is NaN here.
    static let sparseTensorCoreHelpers = #"""
        static inline float sparse_half(unsigned w, int which) { return __uint_as_float(which ? (w & 0xFFFF0000u) : (w << 16)); }
        static unsigned emulated_sparse_a[32][32][4], emulated_sparse_b[32][32][4], emulated_sparse_e[32][32];
        static inline void mma_sp16832(float* d, const unsigned* a, const unsigned* b, unsigned e) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            for (int j = 0; j < 4; ++j) { emulated_sparse_a[warp][lane][j] = a[j]; emulated_sparse_b[warp][lane][j] = b[j]; }
            emulated_sparse_e[warp][lane] = e;
            emulated_warp_sync();
            int g = lane >> 2, t = lane & 3;
            for (int i = 0; i < 4; ++i) {
                int row = g + (i >= 2 ? 8 : 0), column = 2 * t + (i & 1);
                float sum = 0.0f;
                for (int c = 0; c < 8; ++c) {
                    unsigned word = emulated_sparse_a[warp][4 * (row % 8) + c % 4][row / 8 + 2 * (c / 4)];
                    unsigned meta = emulated_sparse_e[warp][4 * (row % 8) + c / 4] >> (16 * (row / 8) + 4 * (c % 4));
                    int first = meta & 3, second = (meta >> 2) & 3;
                    if (first >= second) { sum = __uint_as_float(0x7FC00000u); break; }
                    for (int h = 0; h < 2; ++h) {
                        int kk = 4 * c + (h ? second : first);
                        sum += sparse_half(word, h) * sparse_half(emulated_sparse_b[warp][4 * column + (kk % 8) / 2][kk / 8], kk & 1);
                    }
                }
                d[i] += sum;
            }
            emulated_warp_sync();
        }
        """#

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
        typedef unsigned long long saddr;  // a host address stands in for the shared window's
        static inline saddr shared_address(const void* p) { return (saddr)p; }
        static inline void copy16_async(saddr shared, const void* global, bool valid) {
            if (valid) std::memcpy((void*)shared, global, 16); else std::memset((void*)shared, 0, 16);
        }
        static inline void copy4_async(saddr shared, const void* global) { std::memcpy((void*)shared, global, 4); }
        static inline void commit_copies() {}
        template <int PENDING> static inline void wait_copies() {}
        static const u16* emulated_rows[32][32];
        static inline void load_matrices(unsigned* r, saddr p) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            emulated_rows[warp][lane] = (const u16*)p;
            emulated_warp_sync();
            for (int j = 0; j < 4; ++j) {
                const u16* row = emulated_rows[warp][j * 8 + lane / 4];
                r[j] = (unsigned)row[2 * (lane % 4)] | ((unsigned)row[2 * (lane % 4) + 1] << 16);
            }
            emulated_warp_sync();
        }
        static inline void load_matrices_transposed(unsigned* r, saddr p) {
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            emulated_rows[warp][lane] = (const u16*)p;
            emulated_warp_sync();
            for (int j = 0; j < 4; ++j) {
                const u16* first = emulated_rows[warp][j * 8 + 2 * (lane % 4)];
                const u16* second = emulated_rows[warp][j * 8 + 2 * (lane % 4) + 1];
                r[j] = (unsigned)first[lane / 4] | ((unsigned)second[lane / 4] << 16);
            }
            emulated_warp_sync();
        }
        // x2: the first two matrices only (lanes 0–15 give the addresses).
        static inline void load_two_matrices(unsigned* r, saddr p) {
            unsigned four[4];
            load_matrices(four, p);
            r[0] = four[0]; r[1] = four[1];
        }
        static inline void load_two_matrices_transposed(unsigned* r, saddr p) {
            unsigned four[4];
            load_matrices_transposed(four, p);
            r[0] = four[0]; r[1] = four[1];
        }
        static inline float exp2_fast(float x) { return exp2f(x); }
        static inline void add_pair_atomically(float* p, float a, float b) { atomicAdd(p, a); atomicAdd(p + 1, b); }
        """#
}
