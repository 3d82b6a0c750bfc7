import CCUDA

/// NCCL's entry points, resolved from libnccl at run time (only data-parallel runs open it).
struct NCCLAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let ncclGetVersion: slope_ncclGetVersion_fn
    let ncclGetUniqueId: slope_ncclGetUniqueId_fn
    let ncclCommInitRank: slope_ncclCommInitRank_fn
    let ncclCommDestroy: slope_ncclCommDestroy_fn
    let ncclCommAbort: slope_ncclCommAbort_fn
    let ncclCommGetAsyncError: slope_ncclCommGetAsyncError_fn
    let ncclGetErrorString: slope_ncclGetErrorString_fn
    let ncclAllReduce: slope_ncclAllReduce_fn
    let ncclBroadcast: slope_ncclBroadcast_fn
    let ncclReduceScatter: slope_ncclReduceScatter_fn
    let ncclAllGather: slope_ncclAllGather_fn
    let ncclGroupStart: slope_ncclGroupStart_fn
    let ncclGroupEnd: slope_ncclGroupEnd_fn

    init(_ library: DynamicLibrary) throws {
        self.library = library
        ncclGetVersion = try library.symbol("ncclGetVersion")
        ncclGetUniqueId = try library.symbol("ncclGetUniqueId")
        ncclCommInitRank = try library.symbol("ncclCommInitRank")
        ncclCommDestroy = try library.symbol("ncclCommDestroy")
        ncclCommAbort = try library.symbol("ncclCommAbort")
        ncclCommGetAsyncError = try library.symbol("ncclCommGetAsyncError")
        ncclGetErrorString = try library.symbol("ncclGetErrorString")
        ncclAllReduce = try library.symbol("ncclAllReduce")
        ncclBroadcast = try library.symbol("ncclBroadcast")
        ncclReduceScatter = try library.symbol("ncclReduceScatter")
        ncclAllGather = try library.symbol("ncclAllGather")
        ncclGroupStart = try library.symbol("ncclGroupStart")
        ncclGroupEnd = try library.symbol("ncclGroupEnd")
    }

    static let shared = Result { try NCCLAPI(DynamicLibrary.open(.nccl)) }

    /// Throws ``CUDAError/callFailed(call:library:status:)`` naming `call` unless NCCL returned success.
    static func check(_ result: ncclResult_t, _ call: String) throws {
        guard result == 0 else { throw CUDAError.callFailed(call: call, library: .nccl, status: result) }
    }
}
