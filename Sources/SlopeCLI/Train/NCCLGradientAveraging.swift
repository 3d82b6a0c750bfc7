import SLoPe
import SlopeCUDA

/// The ``Communicator`` of a data-parallel run on GPUs: NCCL averages the ranks' gradients in place, each bucket
/// of them (``GradientBuckets``) in one NCCL launch on a stream of its own as soon as backward has produced it, so
/// communication overlaps the rest of backward; the step's later work waits for the last bucket.
final class NCCLGradientAveraging: Communicator, @unchecked Sendable {
    let nccl: NCCLCommunicator
    let backend: CUDABackend
    let side: CUDASideStream
    var rank: Int { nccl.rank }
    var worldSize: Int { nccl.worldSize }
    var overlapsBackward: Bool { true }

    /// Seconds a step's collectives may take before the peers are presumed gone (`SLOPE_DISTRIBUTED_TIMEOUT`).
    let timeout: Double

    init(_ nccl: NCCLCommunicator, backend: CUDABackend, timeout: Double) throws {
        self.nccl = nccl
        self.backend = backend
        self.timeout = timeout
        side = try CUDASideStream(on: backend.cudaDevice)
    }

    /// Rank 0 makes NCCL's id and hands it out through the rendezvous on MASTER_ADDR:MASTER_PORT; every rank then
    /// joins the communicator on its GPU.
    static func connect(_ job: DistributedEnvironment, backend: CUDABackend, timeout: Double = 300) throws -> NCCLGradientAveraging {
        let id: [UInt8]
        if job.isMaster {
            id = try NCCLCommunicator.uniqueID()
            try Rendezvous.serve(payload: id, worldSize: job.worldSize, port: job.masterPort, timeout: timeout)
        } else {
            id = try Rendezvous.join(rank: job.rank, worldSize: job.worldSize, masterAddress: job.masterAddress, port: job.masterPort, timeout: timeout)
        }
        let nccl = try NCCLCommunicator(uniqueID: id, rank: job.rank, worldSize: job.worldSize, backend: backend)
        return try NCCLGradientAveraging(nccl, backend: backend, timeout: timeout)
    }

    func averageInPlace(_ tensors: [Tensor]) throws {
        try nccl.group { for tensor in tensors { try nccl.allReduce(tensor, .average) } }
    }

    func broadcast(_ tensors: [Tensor], from root: Int) throws {
        try nccl.group { for tensor in tensors { try nccl.broadcast(tensor, root: root) } }
    }

    /// After what backward has issued so far (the bucket's gradients), on the side stream.
    func startAveraging(_ tensors: [Tensor]) throws {
        try side.waitForMainStream()
        try nccl.group { for tensor in tensors { try nccl.allReduce(tensor, .average, on: side) } }
    }

    func finishAveraging() throws {
        try side.joinMainStream()
    }

    /// The step's one read-back: first waits for the stream (the step's collectives included) under the watchdog,
    /// so a peer that is gone ends the run with an error instead of a hang.
    func average(_ values: [Double]) throws -> [Double] {
        let tensor = try backend.tensor(values.map(Float.init), shape: [values.count], dtype: .float32)
        try nccl.allReduce(tensor, .average)
        try nccl.waitForCollectives(timeout: timeout)
        return try backend.floats(tensor).map(Double.init)
    }
}
