import CCUDA
import SlopeCUDA
import SlopeCore
import XCTest

final class LibraryDiscoveryTests: XCTestCase {
    /// A fake file system: the set of files and the folders implied by them.
    private func discovery(files: [String], environment: [String: String] = [:]) -> LibraryDiscovery {
        let fileSet = Set(files)
        return LibraryDiscovery(
            environment: environment,
            fileExists: { fileSet.contains($0) },
            listDirectory: { folder in
                let prefix = folder == "/" ? "/" : folder + "/"
                return Array(Set(fileSet.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count).split(separator: "/")[0]) }))
            })
    }

    func testOrderIsEnvironmentThenLoaderThenToolkitThenPip() {
        let files = [
            "/custom/libs/libcusparseLt.so.0",
            "/usr/local/cuda-13.0/targets/x86_64-linux/lib/libcusparseLt.so.0",
            "/usr/local/cuda-12.4/lib64/libcusparseLt.so",
            "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0",
            "/usr/lib/python3.11/site-packages/nvidia/cu13/lib/libcusparseLt.so.0",
        ]
        let found = discovery(files: files, environment: ["SLOPE_CUDA_LIBS": "/nowhere:/custom/libs"]).candidates(for: .cusparseLt)
        XCTAssertEqual(found, [
            .file("/custom/libs/libcusparseLt.so.0"),
            .loaderName("libcusparseLt.so.0"), .loaderName("libcusparseLt.so"),
            .file("/usr/local/cuda-12.4/lib64/libcusparseLt.so"),
            .file("/usr/local/cuda-13.0/targets/x86_64-linux/lib/libcusparseLt.so.0"),
            .file("/usr/lib/python3.11/site-packages/nvidia/cu13/lib/libcusparseLt.so.0"),
            .file("/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0"),
        ])
    }

    func testCuDNNFromTorchsWheel() {
        let files = ["/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9"]
        XCTAssertEqual(discovery(files: files).candidates(for: .cudnn), [
            .loaderName("libcudnn.so.9"), .loaderName("libcudnn.so"),
            .file("/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9"),
        ])
    }

    func testVirtualEnvironmentAndUserSitePackages() {
        let files = [
            "/home/me/env/lib/python3.12/site-packages/nvidia/cublas/lib/libcublasLt.so.13",
            "/home/me/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcublasLt.so.13",
        ]
        let found = discovery(files: files, environment: ["VIRTUAL_ENV": "/home/me/env", "HOME": "/home/me"]).candidates(for: .cublasLt)
        XCTAssertEqual(found.filter { if case .file = $0 { return true } else { return false } }, [
            .file("/home/me/env/lib/python3.12/site-packages/nvidia/cublas/lib/libcublasLt.so.13"),
            .file("/home/me/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcublasLt.so.13"),
        ])
    }

    func testMissingLibraryErrorNamesPlacesAndProvider() {
        let empty = LibraryDiscovery(environment: [:], fileExists: { _ in false }, listDirectory: { _ in [] })
        var fake = CUDALibrary.cusparseLt
        fake = CUDALibrary(name: fake.name, fileNames: ["libslope-does-not-exist.so.0"], pipFolders: fake.pipFolders, provider: fake.provider)
        XCTAssertThrowsError(try DynamicLibrary.open(fake, discovery: empty)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cuSPARSELt not found"), text)
            XCTAssertTrue(text.contains("libslope-does-not-exist.so.0"), text)
            XCTAssertTrue(text.contains("nvidia-cusparselt-cu13"), text)
            XCTAssertTrue(text.contains("SLOPE_CUDA_LIBS"), text)
        }
    }

    func testSymbolLookupReportsMissingSymbols() throws {
        // libc is always there: open it through the same code path and ask for a symbol it lacks.
        let libc = CUDALibrary(name: "libc", fileNames: ["libc.so.6"], pipFolders: [], provider: "glibc")
        let library = try DynamicLibrary.open(libc, discovery: .system)
        XCTAssertNoThrow(try library.symbol("strlen", as: UnsafeRawPointer.self))
        XCTAssertThrowsError(try library.symbol(firstOf: ["cuMemAlloc_v2", "cuMemAlloc"], as: UnsafeRawPointer.self)) { error in
            XCTAssertEqual(error as? CUDAError, .symbolNotFound(symbol: "cuMemAlloc_v2 or cuMemAlloc", library: "libc", path: library.location))
        }
    }

    func testStatusCodesMapToNames() {
        XCTAssertEqual(CUDAStatus.name(of: 2, in: .driver), "CUDA_ERROR_OUT_OF_MEMORY")
        XCTAssertEqual(CUDAStatus.name(of: 6, in: .nvrtc), "NVRTC_ERROR_COMPILATION")
        XCTAssertEqual(CUDAStatus.name(of: 15, in: .cublas), "CUBLAS_STATUS_NOT_SUPPORTED")
        XCTAssertEqual(CUDAStatus.name(of: 10, in: .cusparse), "CUSPARSE_STATUS_NOT_SUPPORTED")
        XCTAssertEqual(CUDAStatus.name(of: 12345, in: .driver), "CUDA_ERROR_12345")
        XCTAssertThrowsError(try CUDAStatus.check(700, "cuLaunchKernel(slope_gelu)", .driver)) { error in
            XCTAssertEqual("\(error)", "cuLaunchKernel(slope_gelu) failed: CUDA_ERROR_ILLEGAL_ADDRESS (700)")
        }
        XCTAssertNoThrow(try CUDAStatus.check(0, "cuInit", .driver))
    }

    func testShimReservesRoomForEveryCuSPARSELtVersion() {
        XCTAssertGreaterThanOrEqual(slope_ccuda_sparse_object_bytes(), 1024)
        XCTAssertEqual(slope_ccuda_sparse_object_alignment(), 16)
    }

    /// NCCL (data-parallel runs only): found in pip's nvidia-nccl wheel folder, named in the error with what to
    /// install when missing; its status codes and dtypes map as nccl.h defines them.
    func testNCCLDiscoveryErrorsAndCodes() throws {
        let wheel = "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2"
        XCTAssertEqual(discovery(files: [wheel]).candidates(for: .nccl).last, .file(wheel))
        XCTAssertThrowsError(try DynamicLibrary.open(.nccl, discovery: discovery(files: []))) { error in
            XCTAssertTrue("\(error)".contains("NCCL not found") && "\(error)".contains("nvidia-nccl-cu13"), "\(error)")
        }
        XCTAssertEqual(MemoryLayout<slope_ncclUniqueId>.size, 128, "NCCL_UNIQUE_ID_BYTES")
        XCTAssertEqual(CUDAError.callFailed(call: "ncclAllReduce", library: .nccl, status: 6).description,
                       "ncclAllReduce failed: ncclRemoteError (a peer failed or the network dropped) (6)")
        XCTAssertEqual([DType.float32, .bfloat16, .float16, .float64, .int32, .uint8].map(NCCLCommunicator.dataType), [7, 9, 6, 8, 2, 1])
    }
}
