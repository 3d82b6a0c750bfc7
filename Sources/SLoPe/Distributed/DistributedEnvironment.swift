/// Where this process sits in a data-parallel job, read from the variables torchrun (and `slope launch`, and a
/// Slurm script that sets them) gives every process: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
/// `MASTER_PORT`. Without `WORLD_SIZE` (or with 1) the process trains alone.
public struct DistributedEnvironment: Equatable, Sendable {
    public let rank: Int
    public let worldSize: Int
    /// The process's index on its node: the GPU it uses.
    public let localRank: Int
    public let masterAddress: String
    public let masterPort: UInt16

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case missing(String)
        case invalid(name: String, value: String, expected: String)

        public var description: String {
            switch self {
            case .missing(let name):
                return "WORLD_SIZE is set, so \(name) must be too (torchrun and `slope launch` set RANK, WORLD_SIZE, LOCAL_RANK, "
                    + "MASTER_ADDR and MASTER_PORT for every process)"
            case let .invalid(name, value, expected): return "\(name)=\(value) is not \(expected)"
            }
        }
    }

    public init(rank: Int, worldSize: Int, localRank: Int, masterAddress: String, masterPort: UInt16) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.masterAddress = masterAddress
        self.masterPort = masterPort
    }

    /// The job described by `variables` (the process environment by default), or nil for a single process.
    public static func from(_ variables: [String: String]) throws -> DistributedEnvironment? {
        guard let worldText = variables["WORLD_SIZE"] else { return nil }
        func integer(_ name: String, _ text: String, in range: ClosedRange<Int>, _ expected: String) throws -> Int {
            guard let value = Int(text), range.contains(value) else {
                throw Failure.invalid(name: name, value: text, expected: expected)
            }
            return value
        }
        let world = try integer("WORLD_SIZE", worldText, in: 1...65_536, "a process count from 1 to 65536")
        guard world > 1 else { return nil }
        func required(_ name: String) throws -> String {
            guard let value = variables[name], !value.isEmpty else { throw Failure.missing(name) }
            return value
        }
        let rank = try integer("RANK", try required("RANK"), in: 0...(world - 1), "a rank from 0 to \(world - 1)")
        // LOCAL_RANK defaults to RANK (one node), as a hand-written launch script may leave it out.
        let local = try integer("LOCAL_RANK", variables["LOCAL_RANK"] ?? "\(rank)", in: 0...(world - 1), "a local rank from 0 to \(world - 1)")
        let address = try required("MASTER_ADDR")
        let port = try integer("MASTER_PORT", try required("MASTER_PORT"), in: 1...65_535, "a TCP port from 1 to 65535")
        return DistributedEnvironment(rank: rank, worldSize: world, localRank: local, masterAddress: address, masterPort: UInt16(port))
    }

    public var isMaster: Bool { rank == 0 }
}
