import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeCUDA

/// `slope pretrain` in a data-parallel job: this process's place in it and the communicator its ranks average
/// gradients through (NCCL on GPUs, TCP through rank 0 on CPUs).
struct DataParallelJob {
    let environment: DistributedEnvironment
    let communicator: any Communicator
    /// "NCCL 2.21.5" or "TCP through rank 0".
    let transport: String

    var rank: Int { environment.rank }
    var worldSize: Int { environment.worldSize }
    /// Rank 0 writes the run folder (checkpoints, metrics, plot) and reports progress.
    var isLeader: Bool { environment.isMaster }

    /// Seconds any rank waits for the others (to meet, and at every step) before giving up with an error that
    /// names the rank it waited for: `SLOPE_DISTRIBUTED_TIMEOUT`, else 600.
    static func timeout(_ variables: [String: String]) throws -> Double {
        guard let text = variables["SLOPE_DISTRIBUTED_TIMEOUT"] else { return 600 }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 1 else {
            throw ValidationError("SLOPE_DISTRIBUTED_TIMEOUT=\(text) is not a number of seconds ≥ 1")
        }
        return seconds
    }

    /// The job torchrun's variables describe (`slope launch` and Slurm scripts set them too), or nil for a process
    /// training alone.
    /// `SLOPE_DATA_PARALLEL=1` without WORLD_SIZE (or with 1) makes a job of one rank, so the communicator's path
    /// (NCCL on a GPU) can be checked against the plain one on a single device.
    static func environment(_ variables: [String: String] = ProcessInfo.processInfo.environment) throws -> DistributedEnvironment? {
        do {
            if let job = try DistributedEnvironment.from(variables) { return job }
        } catch let failure as DistributedEnvironment.Failure {
            throw ValidationError("\(failure)")
        }
        guard variables["SLOPE_DATA_PARALLEL"] == "1" else { return nil }
        return DistributedEnvironment(rank: 0, worldSize: 1, localRank: 0, masterAddress: "127.0.0.1", masterPort: 0)
    }

    /// Meets the other ranks (rank 0 at MASTER_ADDR:MASTER_PORT) and sets up the communicator for `compute`.
    static func connect(_ environment: DistributedEnvironment, compute: ComputeDevice,
                        variables: [String: String] = ProcessInfo.processInfo.environment) throws -> DataParallelJob {
        let timeout = try timeout(variables)
        if let cuda = compute.backend as? CUDABackend {
            let communicator = try NCCLGradientAveraging.connect(environment, backend: cuda, timeout: timeout)
            return DataParallelJob(environment: environment, communicator: communicator, transport: "NCCL \((try? NCCLCommunicator.version()) ?? "")")
        }
        let communicator = try SocketCommunicator.connect(environment, backend: compute.backend, timeout: timeout)
        return DataParallelJob(environment: environment, communicator: communicator, transport: "TCP through rank 0")
    }

    /// Whether any rank was asked to stop (SIGINT/SIGTERM): all then stop after the same step, so rank 0's
    /// checkpoint is the state of every rank.
    func anyRankStopping(_ stopping: Bool) throws -> Bool {
        try communicator.average([stopping ? 1 : 0])[0] > 0
    }
}
