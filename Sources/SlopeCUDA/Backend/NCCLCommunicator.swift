import CCUDA
import SlopeCore

/// One process's member of an NCCL communicator: the collectives of data-parallel training on this backend's
/// tensors, enqueued on its stream. Rank 0 makes the unique id (``uniqueID()``) and hands it to the others (the
/// rendezvous); every rank then builds its communicator with the same id and world size.
public final class NCCLCommunicator: @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    let backend: CUDABackend
    let api: NCCLAPI
    private var comm: ncclComm_t?

    /// The reductions slope uses.
    public enum Reduction: Int32, Sendable {
        case sum = 0
        case max = 2
        case average = 4
    }

    /// A new unique id (rank 0), as the bytes the rendezvous carries.
    public static func uniqueID() throws -> [UInt8] {
        let api = try NCCLAPI.shared.get()
        var id = slope_ncclUniqueId()
        try NCCLAPI.check(api.ncclGetUniqueId(&id), "ncclGetUniqueId")
        return withUnsafeBytes(of: &id) { Array($0) }
    }

    /// NCCL's version as major.minor.patch (2.21.5 is 22105).
    public static func version() throws -> String {
        let api = try NCCLAPI.shared.get()
        var code: Int32 = 0
        try NCCLAPI.check(api.ncclGetVersion(&code), "ncclGetVersion")
        return code >= 10000 ? "\(code / 10000).\(code / 100 % 100).\(code % 100)" : "\(code / 1000).\(code / 100 % 10).\(code % 100)"
    }

    /// Joins the communicator of `worldSize` ranks identified by `uniqueID` (128 bytes from rank 0).
    public init(uniqueID: [UInt8], rank: Int, worldSize: Int, backend: CUDABackend) throws {
        guard uniqueID.count == MemoryLayout<slope_ncclUniqueId>.size else {
            throw TensorError.invalidArgument(
                operation: "NCCLCommunicator", reason: "the unique id has \(uniqueID.count) bytes, NCCL's has \(MemoryLayout<slope_ncclUniqueId>.size)")
        }
        guard (0..<worldSize).contains(rank) else {
            throw TensorError.invalidArgument(operation: "NCCLCommunicator", reason: "rank \(rank) is not in 0..<\(worldSize)")
        }
        self.rank = rank
        self.worldSize = worldSize
        self.backend = backend
        api = try NCCLAPI.shared.get()
        var id = slope_ncclUniqueId()
        withUnsafeMutableBytes(of: &id) { $0.copyBytes(from: uniqueID) }
        var created: ncclComm_t?
        try backend.cudaDevice.makeCurrent()
        try NCCLAPI.check(api.ncclCommInitRank(&created, Int32(worldSize), id, Int32(rank)), "ncclCommInitRank (rank \(rank) of \(worldSize))")
        comm = created
    }

    deinit {
        if let comm { _ = api.ncclCommDestroy(comm) }
    }

    /// Tears the communicator down without waiting for peers (a failed or stopped peer: no hang on exit).
    public func abort() {
        if let comm { _ = api.ncclCommAbort(comm) }
        comm = nil
    }

    /// NCCL's code for a dtype (ncclDataType_t).
    public static func dataType(_ dtype: DType) -> Int32 {
        switch dtype {
        case .uint8: return 1
        case .int32: return 2
        case .float16: return 6
        case .float32: return 7
        case .float64: return 8
        case .bfloat16: return 9
        }
    }

    /// The communicator's asynchronous error (0: none, 7: still in progress); nil once aborted.
    func asyncError() -> Int32? {
        guard let comm else { return nil }
        var error: Int32 = 0
        guard api.ncclCommGetAsyncError(comm, &error) == 0 else { return nil }
        return error
    }

    private func live(_ call: String) throws -> ncclComm_t {
        guard let comm else { throw TensorError.invalidArgument(operation: call, reason: "the communicator was aborted") }
        return comm
    }

    /// `tensor` reduced over all ranks, in place; on the backend's stream, or on `side` (ordered by the caller).
    public func allReduce(_ tensor: Tensor, _ reduction: Reduction = .sum, on side: CUDASideStream? = nil) throws {
        let pointer = try backend.address(tensor, "ncclAllReduce")
        try NCCLAPI.check(api.ncclAllReduce(
            UnsafeRawPointer(bitPattern: UInt(pointer)), UnsafeMutableRawPointer(bitPattern: UInt(pointer)), tensor.count,
            Self.dataType(tensor.dtype), reduction.rawValue, live("ncclAllReduce"), side?.stream ?? backend.cudaDevice.stream), "ncclAllReduce")
    }

    /// `tensor` on every rank replaced by rank `root`'s.
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws {
        let pointer = try backend.address(tensor, "ncclBroadcast")
        try NCCLAPI.check(api.ncclBroadcast(
            UnsafeRawPointer(bitPattern: UInt(pointer)), UnsafeMutableRawPointer(bitPattern: UInt(pointer)), tensor.count,
            Self.dataType(tensor.dtype), Int32(root), live("ncclBroadcast"), backend.cudaDevice.stream), "ncclBroadcast")
    }

    /// Rank r's `output` (`input.count / worldSize` elements) is part r of `input` reduced over all ranks.
    public func reduceScatter(_ input: Tensor, into output: Tensor, _ reduction: Reduction = .sum) throws {
        guard input.dtype == output.dtype, output.count * worldSize == input.count else {
            throw TensorError.shapeMismatch(operation: "ncclReduceScatter", shapes: [input.shape, output.shape],
                                            reason: "the output must be 1/\(worldSize) of the input, of the same dtype")
        }
        try NCCLAPI.check(api.ncclReduceScatter(
            UnsafeRawPointer(bitPattern: UInt(try backend.address(input, "ncclReduceScatter"))),
            UnsafeMutableRawPointer(bitPattern: UInt(try backend.address(output, "ncclReduceScatter"))), output.count,
            Self.dataType(output.dtype), reduction.rawValue, live("ncclReduceScatter"), backend.cudaDevice.stream), "ncclReduceScatter")
    }

    /// `output` (`worldSize × input.count` elements) holds every rank's `input`, in rank order.
    public func allGather(_ input: Tensor, into output: Tensor) throws {
        guard input.dtype == output.dtype, input.count * worldSize == output.count else {
            throw TensorError.shapeMismatch(operation: "ncclAllGather", shapes: [input.shape, output.shape],
                                            reason: "the output must hold \(worldSize) inputs, of the same dtype")
        }
        try NCCLAPI.check(api.ncclAllGather(
            UnsafeRawPointer(bitPattern: UInt(try backend.address(input, "ncclAllGather"))),
            UnsafeMutableRawPointer(bitPattern: UInt(try backend.address(output, "ncclAllGather"))), input.count,
            Self.dataType(input.dtype), live("ncclAllGather"), backend.cudaDevice.stream), "ncclAllGather")
    }

    /// Calls made inside `body` are fused into one NCCL launch (many small all-reduces as one).
    public func group<T>(_ body: () throws -> T) throws -> T {
        try NCCLAPI.check(api.ncclGroupStart(), "ncclGroupStart")
        let result = Result { try body() }
        try NCCLAPI.check(api.ncclGroupEnd(), "ncclGroupEnd")
        return try result.get()
    }
}
