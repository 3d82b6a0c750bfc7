import Foundation
@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Every kernel family must be valid CUDA C++ for every element type. NVRTC only sees the sources on a machine
/// with a GPU, so this checks them with the toolchain's clang instead: CUDA device mode, `-fsyntax-only`, no CUDA
/// headers — `builtins` declares what the kernels use of the CUDA runtime (NVRTC provides it implicitly).
final class KernelSyntaxTests: XCTestCase {
    static let builtins = #"""
        #define __global__ __attribute__((global))
        #define __device__ __attribute__((device))
        #define __shared__ __attribute__((shared))
        #define __constant__ __attribute__((constant))
        #define __host__ __attribute__((host))
        #define __forceinline__ __inline__ __attribute__((always_inline))
        #define __align__(n) __attribute__((aligned(n)))
        #define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
        #include <__clang_cuda_builtin_vars.h>
        typedef unsigned long size_t;
        struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
        struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
        struct __attribute__((aligned(8))) float2 { float x, y; };
        __device__ void __syncthreads();
        __device__ int __syncthreads_or(int);
        __device__ float __shfl_xor_sync(unsigned, float, int);
        __device__ int __shfl_xor_sync(unsigned, int, int);
        __device__ unsigned __shfl_xor_sync(unsigned, unsigned, int);
        __device__ double __shfl_xor_sync(unsigned, double, int);
        __device__ float __shfl_sync(unsigned, float, int);
        __device__ float __expf(float); __device__ float __logf(float);
        __device__ float expf(float); __device__ float exp2f(float); __device__ float logf(float); __device__ float log2f(float);
        __device__ float log1pf(float); __device__ float powf(float, float); __device__ float sqrtf(float); __device__ float rsqrtf(float);
        __device__ float tanhf(float); __device__ float erff(float); __device__ float sinf(float); __device__ float cosf(float);
        __device__ float fabsf(float); __device__ float fmaxf(float, float); __device__ float fminf(float, float);
        __device__ float fmodf(float, float); __device__ float floorf(float);
        __device__ double exp(double); __device__ double log(double); __device__ double sqrt(double); __device__ double pow(double, double);
        __device__ double cos(double); __device__ double sin(double); __device__ double fabs(double);
        __device__ int abs(int); __device__ int min(int, int); __device__ int max(int, int);
        __device__ unsigned min(unsigned, unsigned); __device__ unsigned max(unsigned, unsigned);
        __device__ long long min(long long, long long); __device__ long long max(long long, long long);
        __device__ bool isnan(float); __device__ bool isinf(float); __device__ bool isfinite(float);
        __device__ float __int_as_float(int); __device__ int __float_as_int(float);
        __device__ float __uint_as_float(unsigned); __device__ unsigned __float_as_uint(float);
        __device__ int __popc(unsigned);
        __device__ void __nanosleep(unsigned);
        __device__ float atomicAdd(float*, float); __device__ int atomicAdd(int*, int); __device__ unsigned atomicAdd(unsigned*, unsigned);
        __device__ unsigned long long atomicAdd(unsigned long long*, unsigned long long);
        __device__ int atomicMax(int*, int); __device__ int atomicOr(int*, int);
        __device__ int atomicExch(int*, int); __device__ unsigned atomicExch(unsigned*, unsigned);
        """#

    func testEveryTranslationUnitIsValidCUDA() throws {
        let checker = try SyntaxChecker()
        for family in KernelFamily.allCases {
            for dtype in [DType.float32, .bfloat16, .float16] {
                let (status, output) = try checker.check(family.translationUnit(for: dtype), name: "\(family)-\(dtype)")
                XCTAssertEqual(status, 0, "\(family) for \(dtype) does not compile:\n\(output.prefix(4000))")
            }
        }
    }

    /// The check itself can fail: an undeclared name in a kernel is reported.
    func testABrokenKernelIsReported() throws {
        let checker = try SyntaxChecker()
        let (status, output) = try checker.check(
            KernelSources.prelude + "\nextern \"C\" __global__ void broken(float* x) { x[0] = undeclared_name; }\n", name: "broken")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("undeclared_name"), output)
    }

    /// clang in CUDA device mode with `builtins` included, in a scratch folder removed with the checker.
    final class SyntaxChecker {
        let clang: URL
        let folder: URL
        let header: URL

        init() throws {
            guard let clang = KernelSyntaxTests.executable("clang") else {
                throw XCTSkip("no clang on PATH: the CUDA kernel sources were not syntax-checked")
            }
            self.clang = clang
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-kernel-syntax-\(UInt32.random(in: 0...UInt32.max))")
            header = folder.appendingPathComponent("builtins.h")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try KernelSyntaxTests.builtins.write(to: header, atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(at: folder) }

        /// clang's exit status and messages for `source`.
        func check(_ source: String, name: String) throws -> (Int32, String) {
            let file = folder.appendingPathComponent(name + ".cu")
            try source.write(to: file, atomically: true, encoding: .utf8)
            return try KernelSyntaxTests.run(clang, [
                "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", "--cuda-gpu-arch=sm_90", "-std=c++17",
                "-include", header.path, "-fsyntax-only", file.path,
            ])
        }
    }

    /// The first `name` on PATH that can be executed.
    static func executable(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Exit status and combined output of `program arguments`.
    static func run(_ program: URL, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
