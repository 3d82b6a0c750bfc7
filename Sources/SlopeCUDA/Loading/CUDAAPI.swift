import CCUDA

/// The CUDA driver API entry points slope uses, resolved from libcuda at run time.
/// Versioned names (`_v2`) come first so a current driver's semantics are used.
struct DriverAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cuInit: slope_cuInit_fn
    let cuDriverGetVersion: slope_cuDriverGetVersion_fn
    let cuGetErrorName: slope_cuGetErrorName_fn
    let cuDeviceGetCount: slope_cuDeviceGetCount_fn
    let cuDeviceGet: slope_cuDeviceGet_fn
    let cuDeviceGetName: slope_cuDeviceGetName_fn
    let cuDeviceGetAttribute: slope_cuDeviceGetAttribute_fn
    let cuDeviceTotalMem: slope_cuDeviceTotalMem_fn
    let cuDevicePrimaryCtxRetain: slope_cuDevicePrimaryCtxRetain_fn
    let cuCtxSetCurrent: slope_cuCtxSetCurrent_fn
    let cuCtxSynchronize: slope_cuCtxSynchronize_fn
    let cuMemGetInfo: slope_cuMemGetInfo_fn
    let cuMemAlloc: slope_cuMemAlloc_fn
    let cuMemFree: slope_cuMemFree_fn
    let cuMemHostAlloc: slope_cuMemHostAlloc_fn
    let cuMemFreeHost: slope_cuMemFreeHost_fn
    let cuMemcpyHtoDAsync: slope_cuMemcpyHtoDAsync_fn
    let cuMemcpyDtoHAsync: slope_cuMemcpyDtoHAsync_fn
    let cuMemcpyDtoDAsync: slope_cuMemcpyDtoDAsync_fn
    let cuMemsetD8Async: slope_cuMemsetD8Async_fn
    let cuStreamCreate: slope_cuStreamCreate_fn
    let cuStreamSynchronize: slope_cuStreamSynchronize_fn
    let cuStreamQuery: slope_cuStreamQuery_fn
    let cuStreamDestroy: slope_cuStreamDestroy_fn
    let cuEventCreate: slope_cuEventCreate_fn
    let cuEventRecord: slope_cuEventRecord_fn
    let cuEventSynchronize: slope_cuEventSynchronize_fn
    let cuEventElapsedTime: slope_cuEventElapsedTime_fn
    let cuEventDestroy: slope_cuEventDestroy_fn
    let cuStreamWaitEvent: slope_cuStreamWaitEvent_fn
    let cuModuleLoadData: slope_cuModuleLoadData_fn
    let cuModuleGetFunction: slope_cuModuleGetFunction_fn
    let cuModuleUnload: slope_cuModuleUnload_fn
    let cuFuncSetAttribute: slope_cuFuncSetAttribute_fn
    let cuFuncGetAttribute: slope_cuFuncGetAttribute_fn
    let cuLaunchKernel: slope_cuLaunchKernel_fn
    let cuStreamBeginCapture: slope_cuStreamBeginCapture_fn
    let cuStreamEndCapture: slope_cuStreamEndCapture_fn
    let cuGraphInstantiateWithFlags: slope_cuGraphInstantiateWithFlags_fn
    let cuGraphLaunch: slope_cuGraphLaunch_fn
    let cuGraphExecDestroy: slope_cuGraphExecDestroy_fn
    let cuGraphDestroy: slope_cuGraphDestroy_fn

    init(_ library: DynamicLibrary) throws {
        self.library = library
        cuInit = try library.symbol("cuInit")
        cuDriverGetVersion = try library.symbol("cuDriverGetVersion")
        cuGetErrorName = try library.symbol("cuGetErrorName")
        cuDeviceGetCount = try library.symbol("cuDeviceGetCount")
        cuDeviceGet = try library.symbol("cuDeviceGet")
        cuDeviceGetName = try library.symbol("cuDeviceGetName")
        cuDeviceGetAttribute = try library.symbol("cuDeviceGetAttribute")
        cuDeviceTotalMem = try library.symbol(firstOf: ["cuDeviceTotalMem_v2", "cuDeviceTotalMem"])
        cuDevicePrimaryCtxRetain = try library.symbol("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.symbol("cuCtxSetCurrent")
        cuCtxSynchronize = try library.symbol("cuCtxSynchronize")
        cuMemGetInfo = try library.symbol(firstOf: ["cuMemGetInfo_v2", "cuMemGetInfo"])
        cuMemAlloc = try library.symbol(firstOf: ["cuMemAlloc_v2", "cuMemAlloc"])
        cuMemFree = try library.symbol(firstOf: ["cuMemFree_v2", "cuMemFree"])
        cuMemHostAlloc = try library.symbol("cuMemHostAlloc")
        cuMemFreeHost = try library.symbol("cuMemFreeHost")
        cuMemcpyHtoDAsync = try library.symbol(firstOf: ["cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync"])
        cuMemcpyDtoHAsync = try library.symbol(firstOf: ["cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync"])
        cuMemcpyDtoDAsync = try library.symbol(firstOf: ["cuMemcpyDtoDAsync_v2", "cuMemcpyDtoDAsync"])
        cuMemsetD8Async = try library.symbol("cuMemsetD8Async")
        cuStreamCreate = try library.symbol("cuStreamCreate")
        cuStreamSynchronize = try library.symbol("cuStreamSynchronize")
        cuStreamQuery = try library.symbol("cuStreamQuery")
        cuStreamDestroy = try library.symbol(firstOf: ["cuStreamDestroy_v2", "cuStreamDestroy"])
        cuEventCreate = try library.symbol("cuEventCreate")
        cuEventRecord = try library.symbol("cuEventRecord")
        cuEventSynchronize = try library.symbol("cuEventSynchronize")
        cuEventElapsedTime = try library.symbol(firstOf: ["cuEventElapsedTime_v2", "cuEventElapsedTime"])
        cuEventDestroy = try library.symbol(firstOf: ["cuEventDestroy_v2", "cuEventDestroy"])
        cuStreamWaitEvent = try library.symbol("cuStreamWaitEvent")
        cuModuleLoadData = try library.symbol("cuModuleLoadData")
        cuModuleGetFunction = try library.symbol("cuModuleGetFunction")
        cuModuleUnload = try library.symbol("cuModuleUnload")
        cuFuncSetAttribute = try library.symbol("cuFuncSetAttribute")
        cuFuncGetAttribute = try library.symbol("cuFuncGetAttribute")
        cuLaunchKernel = try library.symbol("cuLaunchKernel")
        cuStreamBeginCapture = try library.symbol(firstOf: ["cuStreamBeginCapture_v2", "cuStreamBeginCapture"])
        cuStreamEndCapture = try library.symbol("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try library.symbol("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try library.symbol("cuGraphLaunch")
        cuGraphExecDestroy = try library.symbol("cuGraphExecDestroy")
        cuGraphDestroy = try library.symbol("cuGraphDestroy")
    }

    /// Throws a ``CUDAError`` naming `call` unless `status` is CUDA_SUCCESS.
    @inline(__always)
    func check(_ status: CUresult, _ call: @autoclosure () -> String) throws {
        try CUDAStatus.check(status, call(), .driver)
    }
}

/// NVRTC entry points.
struct NVRTCAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let nvrtcVersion: slope_nvrtcVersion_fn
    let nvrtcCreateProgram: slope_nvrtcCreateProgram_fn
    let nvrtcDestroyProgram: slope_nvrtcDestroyProgram_fn
    let nvrtcCompileProgram: slope_nvrtcCompileProgram_fn
    let nvrtcGetProgramLogSize: slope_nvrtcGetProgramLogSize_fn
    let nvrtcGetProgramLog: slope_nvrtcGetProgramLog_fn
    let nvrtcGetCUBINSize: slope_nvrtcGetCUBINSize_fn
    let nvrtcGetCUBIN: slope_nvrtcGetCUBIN_fn

    init(_ library: DynamicLibrary) throws {
        self.library = library
        nvrtcVersion = try library.symbol("nvrtcVersion")
        nvrtcCreateProgram = try library.symbol("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.symbol("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.symbol("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.symbol("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.symbol("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.symbol("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.symbol("nvrtcGetCUBIN")
    }

    @inline(__always)
    func check(_ status: nvrtcResult, _ call: @autoclosure () -> String) throws {
        try CUDAStatus.check(status, call(), .nvrtc)
    }
}

/// cuBLASLt entry points.
struct CuBLASLtAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cublasLtGetVersion: slope_cublasLtGetVersion_fn
    let cublasLtCreate: slope_cublasLtCreate_fn
    let cublasLtMatmulDescCreate: slope_cublasLtMatmulDescCreate_fn
    let cublasLtMatmulDescDestroy: slope_cublasLtMatmulDescDestroy_fn
    let cublasLtMatmulDescSetAttribute: slope_cublasLtMatmulDescSetAttribute_fn
    let cublasLtMatrixLayoutCreate: slope_cublasLtMatrixLayoutCreate_fn
    let cublasLtMatrixLayoutDestroy: slope_cublasLtMatrixLayoutDestroy_fn
    let cublasLtMatrixLayoutSetAttribute: slope_cublasLtMatrixLayoutSetAttribute_fn
    let cublasLtMatmulPreferenceCreate: slope_cublasLtMatmulPreferenceCreate_fn
    let cublasLtMatmulPreferenceDestroy: slope_cublasLtMatmulPreferenceDestroy_fn
    let cublasLtMatmulPreferenceSetAttribute: slope_cublasLtMatmulPreferenceSetAttribute_fn
    let cublasLtMatmulAlgoGetHeuristic: slope_cublasLtMatmulAlgoGetHeuristic_fn
    let cublasLtMatmul: slope_cublasLtMatmul_fn

    init(_ library: DynamicLibrary) throws {
        self.library = library
        cublasLtGetVersion = try library.symbol("cublasLtGetVersion")
        cublasLtCreate = try library.symbol("cublasLtCreate")
        cublasLtMatmulDescCreate = try library.symbol("cublasLtMatmulDescCreate")
        cublasLtMatmulDescDestroy = try library.symbol("cublasLtMatmulDescDestroy")
        cublasLtMatmulDescSetAttribute = try library.symbol("cublasLtMatmulDescSetAttribute")
        cublasLtMatrixLayoutCreate = try library.symbol("cublasLtMatrixLayoutCreate")
        cublasLtMatrixLayoutDestroy = try library.symbol("cublasLtMatrixLayoutDestroy")
        cublasLtMatrixLayoutSetAttribute = try library.symbol("cublasLtMatrixLayoutSetAttribute")
        cublasLtMatmulPreferenceCreate = try library.symbol("cublasLtMatmulPreferenceCreate")
        cublasLtMatmulPreferenceDestroy = try library.symbol("cublasLtMatmulPreferenceDestroy")
        cublasLtMatmulPreferenceSetAttribute = try library.symbol("cublasLtMatmulPreferenceSetAttribute")
        cublasLtMatmulAlgoGetHeuristic = try library.symbol("cublasLtMatmulAlgoGetHeuristic")
        cublasLtMatmul = try library.symbol("cublasLtMatmul")
    }

    @inline(__always)
    func check(_ status: cublasStatus_t, _ call: @autoclosure () -> String) throws {
        try CUDAStatus.check(status, call(), .cublas)
    }
}

/// cuSPARSELt entry points.
struct CuSPARSELtAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cusparseLtInit: slope_cusparseLtInit_fn
    let cusparseLtGetVersion: slope_cusparseLtGetVersion_fn
    let cusparseLtDenseDescriptorInit: slope_cusparseLtDenseDescriptorInit_fn
    let cusparseLtStructuredDescriptorInit: slope_cusparseLtStructuredDescriptorInit_fn
    let cusparseLtMatDescriptorDestroy: slope_cusparseLtMatDescriptorDestroy_fn
    let cusparseLtMatmulDescriptorInit: slope_cusparseLtMatmulDescriptorInit_fn
    let cusparseLtMatmulDescSetAttribute: slope_cusparseLtMatmulDescSetAttribute_fn
    let cusparseLtMatmulAlgSelectionInit: slope_cusparseLtMatmulAlgSelectionInit_fn
    let cusparseLtMatmulAlgSelectionDestroy: slope_cusparseLtMatmulAlgSelectionDestroy_fn
    let cusparseLtMatmulAlgSetAttribute: slope_cusparseLtMatmulAlgSetAttribute_fn
    let cusparseLtMatmulAlgGetAttribute: slope_cusparseLtMatmulAlgGetAttribute_fn
    let cusparseLtMatmulPlanInit: slope_cusparseLtMatmulPlanInit_fn
    let cusparseLtMatmulPlanDestroy: slope_cusparseLtMatmulPlanDestroy_fn
    let cusparseLtMatmulGetWorkspace: slope_cusparseLtMatmulGetWorkspace_fn
    let cusparseLtMatmul: slope_cusparseLtMatmul_fn
    let cusparseLtMatmulSearch: slope_cusparseLtMatmulSearch_fn
    let cusparseLtSpMMAPrune: slope_cusparseLtSpMMAPrune_fn
    let cusparseLtSpMMACompressedSize: slope_cusparseLtSpMMACompressedSize_fn
    let cusparseLtSpMMACompress: slope_cusparseLtSpMMACompress_fn
    let cusparseLtSpMMACompressedSize2: slope_cusparseLtSpMMACompressedSize2_fn
    let cusparseLtSpMMACompress2: slope_cusparseLtSpMMACompress2_fn

    init(_ library: DynamicLibrary) throws {
        self.library = library
        cusparseLtInit = try library.symbol("cusparseLtInit")
        cusparseLtGetVersion = try library.symbol("cusparseLtGetVersion")
        cusparseLtDenseDescriptorInit = try library.symbol("cusparseLtDenseDescriptorInit")
        cusparseLtStructuredDescriptorInit = try library.symbol("cusparseLtStructuredDescriptorInit")
        cusparseLtMatDescriptorDestroy = try library.symbol("cusparseLtMatDescriptorDestroy")
        cusparseLtMatmulDescriptorInit = try library.symbol("cusparseLtMatmulDescriptorInit")
        cusparseLtMatmulDescSetAttribute = try library.symbol("cusparseLtMatmulDescSetAttribute")
        cusparseLtMatmulAlgSelectionInit = try library.symbol("cusparseLtMatmulAlgSelectionInit")
        cusparseLtMatmulAlgSelectionDestroy = try library.symbol("cusparseLtMatmulAlgSelectionDestroy")
        cusparseLtMatmulAlgSetAttribute = try library.symbol("cusparseLtMatmulAlgSetAttribute")
        cusparseLtMatmulAlgGetAttribute = try library.symbol("cusparseLtMatmulAlgGetAttribute")
        cusparseLtMatmulPlanInit = try library.symbol("cusparseLtMatmulPlanInit")
        cusparseLtMatmulPlanDestroy = try library.symbol("cusparseLtMatmulPlanDestroy")
        cusparseLtMatmulGetWorkspace = try library.symbol("cusparseLtMatmulGetWorkspace")
        cusparseLtMatmul = try library.symbol("cusparseLtMatmul")
        cusparseLtMatmulSearch = try library.symbol("cusparseLtMatmulSearch")
        cusparseLtSpMMAPrune = try library.symbol("cusparseLtSpMMAPrune")
        cusparseLtSpMMACompressedSize = try library.symbol("cusparseLtSpMMACompressedSize")
        cusparseLtSpMMACompress = try library.symbol("cusparseLtSpMMACompress")
        cusparseLtSpMMACompressedSize2 = try library.symbol("cusparseLtSpMMACompressedSize2")
        cusparseLtSpMMACompress2 = try library.symbol("cusparseLtSpMMACompress2")
    }

    @inline(__always)
    func check(_ status: cusparseStatus_t, _ call: @autoclosure () -> String) throws {
        try CUDAStatus.check(status, call(), .cusparse)
    }
}
