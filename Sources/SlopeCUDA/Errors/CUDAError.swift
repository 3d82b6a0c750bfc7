import SlopeCore

/// Failures of the CUDA backend. Every message names the call or library and says what to do.
public enum CUDAError: Error, Equatable, CustomStringConvertible {
    case libraryNotFound(library: String, searched: [String], provider: String)
    case symbolNotFound(symbol: String, library: String, path: String)
    /// A call into a CUDA library returned a failure status.
    case callFailed(call: String, library: StatusFamily, status: Int32)
    case compilationFailed(kernel: String, log: String)
    case noDevice(reason: String)
    case unsupportedDevice(name: String, computeCapability: String)
    case outOfMemory(requestedBytes: Int, heldBytes: Int, freeBytes: Int)
    /// An op that needs the host (an upload, a read-back) ran while a CUDA graph was being recorded.
    case notRecordable(operation: String)

    /// Which library's status codes a failed call returned.
    public enum StatusFamily: String, Sendable {
        case driver, nvrtc, cublas, cusparse, nccl, cudnn
    }

    public var description: String {
        switch self {
        case let .libraryNotFound(library, searched, provider):
            let places = searched.isEmpty ? "nowhere" : searched.map { "  - \($0)" }.joined(separator: "\n")
            return "\(library) not found; looked in:\n\(places)\nInstall \(provider), or set SLOPE_CUDA_LIBS to the folder that holds it."
        case let .symbolNotFound(symbol, library, path):
            return "\(library) at \(path) has no symbol \(symbol); the library is too old or not the one slope expects — install a current version"
        case let .callFailed(call, family, status):
            return "\(call) failed: \(CUDAStatus.name(of: status, in: family)) (\(status))"
        case let .compilationFailed(kernel, log):
            return "NVRTC could not compile \(kernel):\n\(log)"
        case let .noDevice(reason):
            return "no CUDA GPU available: \(reason)"
        case let .unsupportedDevice(name, capability):
            return "\(name) has compute capability \(capability); slope needs 8.0 (Ampere) or newer"
        case let .outOfMemory(requested, held, free):
            return "out of GPU memory: requested \(byteCountText(requested)) while slope holds \(byteCountText(held)) and "
                + "\(byteCountText(free)) are free; reduce the batch size or sequence length (training: or --recompute-activations, "
                + "which keeps one block's activations at a time)"
        case let .notRecordable(operation):
            return "\(operation) ran while a CUDA graph was being recorded (a graph cannot hold host work); the step runs op by op "
                + "instead. A slope bug worth reporting; SLOPE_CUDA_GRAPHS=0 skips recording"
        }
    }
}

/// Names of the status codes the CUDA libraries return.
public enum CUDAStatus {
    public static func name(of status: Int32, in family: CUDAError.StatusFamily) -> String {
        switch family {
        case .driver: return driverNames[status] ?? "CUDA_ERROR_\(status)"
        case .nvrtc: return nvrtcNames[status] ?? "NVRTC_ERROR_\(status)"
        case .cublas: return cublasNames[status] ?? "CUBLAS_STATUS_\(status)"
        case .cusparse: return cusparseNames[status] ?? "CUSPARSE_STATUS_\(status)"
        case .nccl: return ncclNames[status] ?? "ncclResult \(status)"
        case .cudnn: return cudnnNames[status] ?? cudnnClass(status)
        }
    }

    /// NCCL results (nccl.h 2.x), with what each usually means for a data-parallel run.
    static let ncclNames: [Int32: String] = [
        0: "ncclSuccess", 1: "ncclUnhandledCudaError (a CUDA call inside NCCL failed)",
        2: "ncclSystemError (a system call failed: network, shared memory, or a peer process died)",
        3: "ncclInternalError", 4: "ncclInvalidArgument", 5: "ncclInvalidUsage",
        6: "ncclRemoteError (a peer failed or the network dropped)", 7: "ncclInProgress",
    ]

    /// cuDNN 9 statuses: the class is the thousands (1xxx not initialised, 2xxx bad parameter, 3xxx not supported,
    /// 4xxx internal, 5xxx execution failed), the rest says which.
    static let cudnnNames: [Int32: String] = [
        0: "CUDNN_STATUS_SUCCESS", 1001: "CUDNN_STATUS_NOT_INITIALIZED",
        1002: "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH (cuDNN's sub-libraries come from different versions)",
        1008: "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED (a libcudnn_*.so.9 beside libcudnn.so.9 is missing)",
        2000: "CUDNN_STATUS_BAD_PARAM", 2002: "CUDNN_STATUS_BAD_PARAM_NULL_POINTER",
        2003: "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER", 2004: "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED",
        2005: "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND", 2006: "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT",
        2007: "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH", 2008: "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH",
        2009: "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES", 2010: "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE",
        3000: "CUDNN_STATUS_NOT_SUPPORTED", 3001: "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN",
        3002: "CUDNN_STATUS_NOT_SUPPORTED_SHAPE", 3003: "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE",
        3004: "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT", 3005: "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER",
        3007: "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH", 3010: "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT",
        4000: "CUDNN_STATUS_INTERNAL_ERROR", 4001: "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED",
        4004: "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED", 5000: "CUDNN_STATUS_EXECUTION_FAILED",
        5001: "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER",
    ]

    static func cudnnClass(_ status: Int32) -> String {
        switch status / 1000 {
        case 1: return "CUDNN_STATUS_NOT_INITIALIZED class"
        case 2: return "CUDNN_STATUS_BAD_PARAM class"
        case 3: return "CUDNN_STATUS_NOT_SUPPORTED class"
        case 4: return "CUDNN_STATUS_INTERNAL_ERROR class"
        case 5: return "CUDNN_STATUS_EXECUTION_FAILED class"
        default: return "cudnnStatus \(status)"
        }
    }

    /// Driver API results (cuda.h, CUDA 13.0); the common ones and those a user can cause.
    static let driverNames: [Int32: String] = [
        0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY",
        3: "CUDA_ERROR_NOT_INITIALIZED", 4: "CUDA_ERROR_DEINITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY",
        36: "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER", 46: "CUDA_ERROR_DEVICE_UNAVAILABLE",
        100: "CUDA_ERROR_NO_DEVICE", 101: "CUDA_ERROR_INVALID_DEVICE", 200: "CUDA_ERROR_INVALID_IMAGE",
        201: "CUDA_ERROR_INVALID_CONTEXT", 209: "CUDA_ERROR_NO_BINARY_FOR_GPU", 218: "CUDA_ERROR_INVALID_PTX",
        222: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", 300: "CUDA_ERROR_INVALID_SOURCE", 301: "CUDA_ERROR_FILE_NOT_FOUND",
        400: "CUDA_ERROR_INVALID_HANDLE", 500: "CUDA_ERROR_NOT_FOUND", 600: "CUDA_ERROR_NOT_READY",
        700: "CUDA_ERROR_ILLEGAL_ADDRESS", 701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", 702: "CUDA_ERROR_LAUNCH_TIMEOUT",
        709: "CUDA_ERROR_CONTEXT_IS_DESTROYED", 710: "CUDA_ERROR_ASSERT", 715: "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        716: "CUDA_ERROR_MISALIGNED_ADDRESS", 719: "CUDA_ERROR_LAUNCH_FAILED", 800: "CUDA_ERROR_NOT_PERMITTED",
        801: "CUDA_ERROR_NOT_SUPPORTED", 802: "CUDA_ERROR_SYSTEM_NOT_READY", 803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        900: "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", 901: "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
        906: "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT", 910: "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE",
        999: "CUDA_ERROR_UNKNOWN",
    ]

    static let nvrtcNames: [Int32: String] = [
        0: "NVRTC_SUCCESS", 1: "NVRTC_ERROR_OUT_OF_MEMORY", 2: "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        3: "NVRTC_ERROR_INVALID_INPUT", 4: "NVRTC_ERROR_INVALID_PROGRAM", 5: "NVRTC_ERROR_INVALID_OPTION",
        6: "NVRTC_ERROR_COMPILATION", 7: "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE", 11: "NVRTC_ERROR_INTERNAL_ERROR",
    ]

    static let cublasNames: [Int32: String] = [
        0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
        7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
        13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
        16: "CUBLAS_STATUS_LICENSE_ERROR",
    ]

    static let cusparseNames: [Int32: String] = [
        0: "CUSPARSE_STATUS_SUCCESS", 1: "CUSPARSE_STATUS_NOT_INITIALIZED", 2: "CUSPARSE_STATUS_ALLOC_FAILED",
        3: "CUSPARSE_STATUS_INVALID_VALUE", 4: "CUSPARSE_STATUS_ARCH_MISMATCH", 5: "CUSPARSE_STATUS_MAPPING_ERROR",
        6: "CUSPARSE_STATUS_EXECUTION_FAILED", 7: "CUSPARSE_STATUS_INTERNAL_ERROR", 8: "CUSPARSE_STATUS_MATRIX_TYPE_NOT_SUPPORTED",
        10: "CUSPARSE_STATUS_NOT_SUPPORTED", 11: "CUSPARSE_STATUS_INSUFFICIENT_RESOURCES",
    ]

    /// Throws ``CUDAError/callFailed(call:library:status:)`` unless `status` is 0 (success in every family).
    @inline(__always)
    public static func check(_ status: Int32, _ call: @autoclosure () -> String, _ family: CUDAError.StatusFamily) throws {
        if status != 0 { throw CUDAError.callFailed(call: call(), library: family, status: status) }
    }
}
