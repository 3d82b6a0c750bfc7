// Hand-written declarations of the few CUDA driver, NVRTC, cuBLASLt and cuSPARSELt types, constants and
// function signatures slope calls. No NVIDIA header is needed to build: the libraries are opened at run time
// (dlopen) and each symbol is cast to the function-pointer type declared here. Values match CUDA 13.0,
// cuBLASLt 13.1, cuSPARSELt 0.8, NCCL 2 and cuDNN 9, and are stable across the versions slope supports.
#ifndef SLOPE_CCUDA_H
#define SLOPE_CCUDA_H

#include <stddef.h>
#include <stdint.h>

// MARK: Driver API (libcuda.so.1)

typedef int CUresult;  // CUDA_SUCCESS = 0
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

enum {
    SLOPE_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    SLOPE_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    SLOPE_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    SLOPE_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    SLOPE_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    SLOPE_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,
    SLOPE_CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3,
    SLOPE_CU_FUNC_ATTRIBUTE_NUM_REGS = 4,
    // CUstreamCaptureMode: relaxed lets other threads (and this one) call cuMemAlloc while a stream records.
    SLOPE_CU_STREAM_CAPTURE_MODE_RELAXED = 2,
};

typedef CUresult (*slope_cuInit_fn)(unsigned int flags);
typedef CUresult (*slope_cuDriverGetVersion_fn)(int *version);
typedef CUresult (*slope_cuGetErrorName_fn)(CUresult error, const char **name);
typedef CUresult (*slope_cuDeviceGetCount_fn)(int *count);
typedef CUresult (*slope_cuDeviceGet_fn)(CUdevice *device, int ordinal);
typedef CUresult (*slope_cuDeviceGetName_fn)(char *name, int length, CUdevice device);
typedef CUresult (*slope_cuDeviceGetAttribute_fn)(int *value, int attribute, CUdevice device);
typedef CUresult (*slope_cuDeviceTotalMem_fn)(size_t *bytes, CUdevice device);
typedef CUresult (*slope_cuDevicePrimaryCtxRetain_fn)(CUcontext *context, CUdevice device);
typedef CUresult (*slope_cuCtxSetCurrent_fn)(CUcontext context);
typedef CUresult (*slope_cuCtxSynchronize_fn)(void);
typedef CUresult (*slope_cuMemGetInfo_fn)(size_t *free, size_t *total);
typedef CUresult (*slope_cuMemAlloc_fn)(CUdeviceptr *pointer, size_t bytes);
typedef CUresult (*slope_cuMemFree_fn)(CUdeviceptr pointer);
typedef CUresult (*slope_cuMemHostAlloc_fn)(void **pointer, size_t bytes, unsigned int flags);
typedef CUresult (*slope_cuMemFreeHost_fn)(void *pointer);
typedef CUresult (*slope_cuMemcpyHtoDAsync_fn)(CUdeviceptr destination, const void *source, size_t bytes, CUstream stream);
typedef CUresult (*slope_cuMemcpyDtoHAsync_fn)(void *destination, CUdeviceptr source, size_t bytes, CUstream stream);
typedef CUresult (*slope_cuMemcpyDtoDAsync_fn)(CUdeviceptr destination, CUdeviceptr source, size_t bytes, CUstream stream);
typedef CUresult (*slope_cuMemsetD8Async_fn)(CUdeviceptr destination, unsigned char value, size_t count, CUstream stream);
typedef CUresult (*slope_cuStreamCreate_fn)(CUstream *stream, unsigned int flags);
typedef CUresult (*slope_cuStreamSynchronize_fn)(CUstream stream);
typedef CUresult (*slope_cuStreamQuery_fn)(CUstream stream);
typedef CUresult (*slope_cuStreamDestroy_fn)(CUstream stream);
typedef CUresult (*slope_cuEventCreate_fn)(CUevent *event, unsigned int flags);
typedef CUresult (*slope_cuEventRecord_fn)(CUevent event, CUstream stream);
typedef CUresult (*slope_cuEventSynchronize_fn)(CUevent event);
typedef CUresult (*slope_cuEventElapsedTime_fn)(float *milliseconds, CUevent start, CUevent end);
typedef CUresult (*slope_cuEventDestroy_fn)(CUevent event);
typedef CUresult (*slope_cuStreamWaitEvent_fn)(CUstream stream, CUevent event, unsigned int flags);
typedef CUresult (*slope_cuModuleLoadData_fn)(CUmodule *module, const void *image);
typedef CUresult (*slope_cuModuleGetFunction_fn)(CUfunction *function, CUmodule module, const char *name);
typedef CUresult (*slope_cuModuleUnload_fn)(CUmodule module);
typedef CUresult (*slope_cuFuncSetAttribute_fn)(CUfunction function, int attribute, int value);
typedef CUresult (*slope_cuFuncGetAttribute_fn)(int *value, int attribute, CUfunction function);
typedef CUresult (*slope_cuStreamBeginCapture_fn)(CUstream stream, int mode);
typedef CUresult (*slope_cuStreamEndCapture_fn)(CUstream stream, CUgraph *graph);
typedef CUresult (*slope_cuGraphInstantiateWithFlags_fn)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
typedef CUresult (*slope_cuGraphLaunch_fn)(CUgraphExec exec, CUstream stream);
typedef CUresult (*slope_cuGraphExecDestroy_fn)(CUgraphExec exec);
typedef CUresult (*slope_cuGraphDestroy_fn)(CUgraph graph);
typedef CUresult (*slope_cuLaunchKernel_fn)(
    CUfunction function, unsigned int gridX, unsigned int gridY, unsigned int gridZ,
    unsigned int blockX, unsigned int blockY, unsigned int blockZ, unsigned int sharedBytes,
    CUstream stream, void **parameters, void **extra);

// MARK: NVRTC (libnvrtc.so)

typedef int nvrtcResult;  // NVRTC_SUCCESS = 0, NVRTC_ERROR_COMPILATION = 6
typedef struct _nvrtcProgram *nvrtcProgram;

typedef nvrtcResult (*slope_nvrtcVersion_fn)(int *major, int *minor);
typedef const char *(*slope_nvrtcGetErrorString_fn)(nvrtcResult result);
typedef nvrtcResult (*slope_nvrtcCreateProgram_fn)(
    nvrtcProgram *program, const char *source, const char *name, int headerCount,
    const char *const *headers, const char *const *includeNames);
typedef nvrtcResult (*slope_nvrtcDestroyProgram_fn)(nvrtcProgram *program);
typedef nvrtcResult (*slope_nvrtcCompileProgram_fn)(nvrtcProgram program, int optionCount, const char *const *options);
typedef nvrtcResult (*slope_nvrtcGetProgramLogSize_fn)(nvrtcProgram program, size_t *size);
typedef nvrtcResult (*slope_nvrtcGetProgramLog_fn)(nvrtcProgram program, char *log);
typedef nvrtcResult (*slope_nvrtcGetCUBINSize_fn)(nvrtcProgram program, size_t *size);
typedef nvrtcResult (*slope_nvrtcGetCUBIN_fn)(nvrtcProgram program, char *cubin);

// MARK: Shared library types

typedef int cublasStatus_t;    // CUBLAS_STATUS_SUCCESS = 0
typedef int cusparseStatus_t;  // CUSPARSE_STATUS_SUCCESS = 0
typedef int cudaDataType;

enum {
    SLOPE_CUDA_R_32F = 0,
    SLOPE_CUDA_R_64F = 1,
    SLOPE_CUDA_R_16F = 2,
    SLOPE_CUDA_R_16BF = 14,
};

// MARK: cuBLASLt (libcublasLt.so)

typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_st *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_st *cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque_st *cublasLtMatmulPreference_t;

typedef struct {
    uint64_t data[8];
} slope_cublasLtMatmulAlgo;

typedef struct {
    slope_cublasLtMatmulAlgo algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} slope_cublasLtMatmulHeuristicResult;

enum {
    SLOPE_CUBLAS_COMPUTE_32F = 68,
    SLOPE_CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
    SLOPE_CUBLAS_OP_N = 0,
    SLOPE_CUBLAS_OP_T = 1,
    SLOPE_CUBLASLT_ORDER_COL = 0,
    SLOPE_CUBLASLT_ORDER_ROW = 1,
    SLOPE_CUBLASLT_MATRIX_LAYOUT_ORDER = 1,
    SLOPE_CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,
    SLOPE_CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,
    SLOPE_CUBLASLT_MATMUL_DESC_TRANSA = 3,
    SLOPE_CUBLASLT_MATMUL_DESC_TRANSB = 4,
    SLOPE_CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    SLOPE_CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
    SLOPE_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,
    SLOPE_CUBLASLT_EPILOGUE_DEFAULT = 1,
    SLOPE_CUBLASLT_EPILOGUE_RELU = 2,
    SLOPE_CUBLASLT_EPILOGUE_BIAS = 4,
    SLOPE_CUBLASLT_EPILOGUE_RELU_BIAS = 6,
    SLOPE_CUBLASLT_EPILOGUE_BGRADB = 512,
    SLOPE_CUBLASLT_EPILOGUE_GELU = 32,
    SLOPE_CUBLASLT_EPILOGUE_GELU_BIAS = 36,
    SLOPE_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    SLOPE_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

typedef size_t (*slope_cublasLtGetVersion_fn)(void);
typedef cublasStatus_t (*slope_cublasLtCreate_fn)(cublasLtHandle_t *handle);
typedef cublasStatus_t (*slope_cublasLtDestroy_fn)(cublasLtHandle_t handle);
typedef cublasStatus_t (*slope_cublasLtMatmulDescCreate_fn)(cublasLtMatmulDesc_t *desc, int computeType, cudaDataType scaleType);
typedef cublasStatus_t (*slope_cublasLtMatmulDescDestroy_fn)(cublasLtMatmulDesc_t desc);
typedef cublasStatus_t (*slope_cublasLtMatmulDescSetAttribute_fn)(cublasLtMatmulDesc_t desc, int attribute, const void *value, size_t size);
typedef cublasStatus_t (*slope_cublasLtMatrixLayoutCreate_fn)(cublasLtMatrixLayout_t *layout, cudaDataType type, uint64_t rows, uint64_t columns, int64_t ld);
typedef cublasStatus_t (*slope_cublasLtMatrixLayoutDestroy_fn)(cublasLtMatrixLayout_t layout);
typedef cublasStatus_t (*slope_cublasLtMatrixLayoutSetAttribute_fn)(cublasLtMatrixLayout_t layout, int attribute, const void *value, size_t size);
typedef cublasStatus_t (*slope_cublasLtMatmulPreferenceCreate_fn)(cublasLtMatmulPreference_t *preference);
typedef cublasStatus_t (*slope_cublasLtMatmulPreferenceDestroy_fn)(cublasLtMatmulPreference_t preference);
typedef cublasStatus_t (*slope_cublasLtMatmulPreferenceSetAttribute_fn)(cublasLtMatmulPreference_t preference, int attribute, const void *value, size_t size);
typedef cublasStatus_t (*slope_cublasLtMatmulAlgoGetHeuristic_fn)(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
    cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t preference,
    int requested, slope_cublasLtMatmulHeuristicResult *results, int *returned);
typedef cublasStatus_t (*slope_cublasLtMatmul_fn)(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha, const void *a, cublasLtMatrixLayout_t aLayout,
    const void *b, cublasLtMatrixLayout_t bLayout, const void *beta, const void *c, cublasLtMatrixLayout_t cLayout,
    void *d, cublasLtMatrixLayout_t dLayout, const slope_cublasLtMatmulAlgo *algo, void *workspace, size_t workspaceBytes,
    CUstream stream);

// MARK: cuSPARSELt (libcusparseLt.so.0)

// The library's opaque objects are 512 bytes (16-aligned) in 0.8 and 0.10 and were 1024 in older releases:
// reserve 1024 so every version fits.
typedef struct { _Alignas(16) uint8_t data[1024]; } slope_cusparseLtHandle;
typedef struct { _Alignas(16) uint8_t data[1024]; } slope_cusparseLtMatDescriptor;
typedef struct { _Alignas(16) uint8_t data[1024]; } slope_cusparseLtMatmulDescriptor;
typedef struct { _Alignas(16) uint8_t data[1024]; } slope_cusparseLtMatmulAlgSelection;
typedef struct { _Alignas(16) uint8_t data[1024]; } slope_cusparseLtMatmulPlan;

enum {
    SLOPE_CUSPARSE_OPERATION_NON_TRANSPOSE = 0,
    SLOPE_CUSPARSE_OPERATION_TRANSPOSE = 1,
    SLOPE_CUSPARSE_ORDER_COL = 1,
    SLOPE_CUSPARSE_ORDER_ROW = 2,
    SLOPE_CUSPARSE_COMPUTE_32F = 2,
    SLOPE_CUSPARSELT_SPARSITY_50_PERCENT = 0,
    SLOPE_CUSPARSELT_MATMUL_ALG_DEFAULT = 0,
    SLOPE_CUSPARSELT_MATMUL_ALG_CONFIG_ID = 0,
    SLOPE_CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID = 1,
    SLOPE_CUSPARSELT_MATMUL_SEARCH_ITERATIONS = 2,
    SLOPE_CUSPARSELT_MATMUL_SPLIT_K = 3,
    SLOPE_CUSPARSELT_MATMUL_SPLIT_K_MODE = 4,
    SLOPE_CUSPARSELT_MATMUL_SPLIT_K_BUFFERS = 5,
    SLOPE_CUSPARSELT_MATMUL_ACTIVATION_RELU = 0,
    SLOPE_CUSPARSELT_MATMUL_BIAS_POINTER = 8,
    SLOPE_CUSPARSELT_PRUNE_SPMMA_STRIP = 1,
};

typedef const slope_cusparseLtHandle *slope_cusparseLtHandleRef;
typedef cusparseStatus_t (*slope_cusparseLtInit_fn)(slope_cusparseLtHandle *handle);
typedef cusparseStatus_t (*slope_cusparseLtDestroy_fn)(slope_cusparseLtHandleRef handle);
typedef cusparseStatus_t (*slope_cusparseLtGetVersion_fn)(slope_cusparseLtHandleRef handle, int *version);
typedef const char *(*slope_cusparseLtGetErrorName_fn)(cusparseStatus_t status);
typedef cusparseStatus_t (*slope_cusparseLtDenseDescriptorInit_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatDescriptor *descriptor, int64_t rows, int64_t columns,
    int64_t ld, uint32_t alignment, cudaDataType valueType, int order);
typedef cusparseStatus_t (*slope_cusparseLtStructuredDescriptorInit_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatDescriptor *descriptor, int64_t rows, int64_t columns,
    int64_t ld, uint32_t alignment, cudaDataType valueType, int order, int sparsity);
typedef cusparseStatus_t (*slope_cusparseLtMatDescriptorDestroy_fn)(const slope_cusparseLtMatDescriptor *descriptor);
typedef cusparseStatus_t (*slope_cusparseLtMatmulDescriptorInit_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulDescriptor *matmul, int opA, int opB,
    const slope_cusparseLtMatDescriptor *a, const slope_cusparseLtMatDescriptor *b,
    const slope_cusparseLtMatDescriptor *c, const slope_cusparseLtMatDescriptor *d, int computeType);
typedef cusparseStatus_t (*slope_cusparseLtMatmulDescSetAttribute_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulDescriptor *matmul, int attribute, const void *value, size_t size);
typedef cusparseStatus_t (*slope_cusparseLtMatmulAlgSelectionInit_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulAlgSelection *selection,
    const slope_cusparseLtMatmulDescriptor *matmul, int algorithm);
typedef cusparseStatus_t (*slope_cusparseLtMatmulAlgSelectionDestroy_fn)(const slope_cusparseLtMatmulAlgSelection *selection);
typedef cusparseStatus_t (*slope_cusparseLtMatmulAlgSetAttribute_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulAlgSelection *selection, int attribute, const void *value, size_t size);
typedef cusparseStatus_t (*slope_cusparseLtMatmulAlgGetAttribute_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulAlgSelection *selection, int attribute, void *value, size_t size);
typedef cusparseStatus_t (*slope_cusparseLtMatmulPlanInit_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulPlan *plan, const slope_cusparseLtMatmulDescriptor *matmul,
    const slope_cusparseLtMatmulAlgSelection *selection);
typedef cusparseStatus_t (*slope_cusparseLtMatmulPlanDestroy_fn)(const slope_cusparseLtMatmulPlan *plan);
typedef cusparseStatus_t (*slope_cusparseLtMatmulGetWorkspace_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulPlan *plan, size_t *bytes);
typedef cusparseStatus_t (*slope_cusparseLtMatmul_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulPlan *plan, const void *alpha, const void *a,
    const void *b, const void *beta, const void *c, void *d, void *workspace, CUstream *streams, int32_t streamCount);
typedef cusparseStatus_t (*slope_cusparseLtMatmulSearch_fn)(
    slope_cusparseLtHandleRef handle, slope_cusparseLtMatmulPlan *plan, const void *alpha, const void *a,
    const void *b, const void *beta, const void *c, void *d, void *workspace, CUstream *streams, int32_t streamCount);
typedef cusparseStatus_t (*slope_cusparseLtSpMMAPrune_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulDescriptor *matmul, const void *input, void *output,
    int algorithm, CUstream stream);
typedef cusparseStatus_t (*slope_cusparseLtSpMMACompressedSize_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulPlan *plan, size_t *compressedBytes, size_t *bufferBytes);
typedef cusparseStatus_t (*slope_cusparseLtSpMMACompress_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatmulPlan *plan, const void *dense, void *compressed,
    void *buffer, CUstream stream);
typedef cusparseStatus_t (*slope_cusparseLtSpMMACompressedSize2_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatDescriptor *sparse, size_t *compressedBytes, size_t *bufferBytes);
typedef cusparseStatus_t (*slope_cusparseLtSpMMACompress2_fn)(
    slope_cusparseLtHandleRef handle, const slope_cusparseLtMatDescriptor *sparse, int isSparseA, int op, const void *dense,
    void *compressed, void *buffer, CUstream stream);

// MARK: NCCL (libnccl.so.2): the collectives of data-parallel training. cudaStream_t is the driver's CUstream.
typedef int ncclResult_t;  // ncclSuccess = 0
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[128]; } slope_ncclUniqueId;  // NCCL_UNIQUE_ID_BYTES
typedef ncclResult_t (*slope_ncclGetVersion_fn)(int *version);
typedef ncclResult_t (*slope_ncclGetUniqueId_fn)(slope_ncclUniqueId *uniqueId);
typedef ncclResult_t (*slope_ncclCommInitRank_fn)(ncclComm_t *comm, int nranks, slope_ncclUniqueId commId, int rank);
typedef ncclResult_t (*slope_ncclCommDestroy_fn)(ncclComm_t comm);
typedef ncclResult_t (*slope_ncclCommAbort_fn)(ncclComm_t comm);
typedef ncclResult_t (*slope_ncclCommGetAsyncError_fn)(ncclComm_t comm, ncclResult_t *asyncError);
typedef const char *(*slope_ncclGetErrorString_fn)(ncclResult_t result);
typedef ncclResult_t (*slope_ncclAllReduce_fn)(
    const void *sendbuff, void *recvbuff, size_t count, int datatype, int op, ncclComm_t comm, CUstream stream);
typedef ncclResult_t (*slope_ncclBroadcast_fn)(
    const void *sendbuff, void *recvbuff, size_t count, int datatype, int root, ncclComm_t comm, CUstream stream);
typedef ncclResult_t (*slope_ncclReduceScatter_fn)(
    const void *sendbuff, void *recvbuff, size_t recvcount, int datatype, int op, ncclComm_t comm, CUstream stream);
typedef ncclResult_t (*slope_ncclAllGather_fn)(
    const void *sendbuff, void *recvbuff, size_t sendcount, int datatype, ncclComm_t comm, CUstream stream);
typedef ncclResult_t (*slope_ncclGroupStart_fn)(void);
typedef ncclResult_t (*slope_ncclGroupEnd_fn)(void);

// MARK: cuDNN (libcudnn.so.9): the backend (graph) API, for its fused attention. Descriptors are opaque
// handles; attribute names, types and enum values are plain ints (their values in CuDNNAPI.swift).
typedef int cudnnStatus_t;  // CUDNN_STATUS_SUCCESS = 0
typedef struct cudnnContext *cudnnHandle_t;
typedef void *cudnnBackendDescriptor_t;
typedef size_t (*slope_cudnnGetVersion_fn)(void);
typedef cudnnStatus_t (*slope_cudnnCreate_fn)(cudnnHandle_t *handle);
typedef cudnnStatus_t (*slope_cudnnDestroy_fn)(cudnnHandle_t handle);
typedef cudnnStatus_t (*slope_cudnnSetStream_fn)(cudnnHandle_t handle, CUstream stream);
typedef const char *(*slope_cudnnGetErrorString_fn)(cudnnStatus_t status);
typedef void (*slope_cudnnGetLastErrorString_fn)(char *message, size_t capacity);
typedef cudnnStatus_t (*slope_cudnnBackendCreateDescriptor_fn)(int descriptorType, cudnnBackendDescriptor_t *descriptor);
typedef cudnnStatus_t (*slope_cudnnBackendDestroyDescriptor_fn)(cudnnBackendDescriptor_t descriptor);
typedef cudnnStatus_t (*slope_cudnnBackendFinalize_fn)(cudnnBackendDescriptor_t descriptor);
typedef cudnnStatus_t (*slope_cudnnBackendSetAttribute_fn)(
    cudnnBackendDescriptor_t descriptor, int attributeName, int attributeType, int64_t elementCount, const void *elements);
typedef cudnnStatus_t (*slope_cudnnBackendGetAttribute_fn)(
    cudnnBackendDescriptor_t descriptor, int attributeName, int attributeType, int64_t requestedElementCount,
    int64_t *elementCount, void *elements);
typedef cudnnStatus_t (*slope_cudnnBackendExecute_fn)(
    cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan, cudnnBackendDescriptor_t variantPack);

/// Size and alignment the shim reserves for cuSPARSELt's opaque objects (checked by the tests).
size_t slope_ccuda_sparse_object_bytes(void);
size_t slope_ccuda_sparse_object_alignment(void);

/// The file a `dlopen` handle was loaded from (glibc's dlinfo), or NULL.
const char *slope_dl_path(void *handle);

#endif
