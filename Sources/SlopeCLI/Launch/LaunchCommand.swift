import ArgumentParser
import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `slope launch`: starts this node's processes of a data-parallel job, as torchrun does — each with `RANK`,
/// `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` — forwards SIGINT and SIGTERM
/// to them, and when one fails stops the others and says which rank failed.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Start a data-parallel job's processes on this node (torchrun's conventions): slope launch --nproc-per-node 8 -- pretrain …",
        discussion: """
            Each process is this slope executable run with the arguments after --, and the variables RANK, WORLD_SIZE, \
            LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (rank = node rank × processes per node + local \
            rank). Rank 0 listens on MASTER_ADDR:MASTER_PORT for the others. Several nodes: run the same command on \
            each with --nnodes, its own --node-rank and node 0's address as --master-addr. torchrun or srun may start \
            slope pretrain directly instead, with the same variables.
            """
    )

    @Option(parsing: .unconditional, help: "Processes to start on this node (one per GPU).")
    var nprocPerNode: Int

    @Option(parsing: .unconditional, help: "Nodes in the job.")
    var nnodes = 1

    @Option(parsing: .unconditional, help: "This node's index, 0 ..< --nnodes.")
    var nodeRank = 0

    @Option(help: "Address of node 0, where rank 0 listens.")
    var masterAddr = "127.0.0.1"

    @Option(parsing: .unconditional, help: "Port rank 0 listens on.")
    var masterPort = 29500

    @Option(parsing: .unconditional, help: "Seconds the other ranks get to stop after one fails or a signal arrives, before they are killed.")
    var gracePeriod = 30.0

    @Argument(parsing: .captureForPassthrough, help: "-- then the slope command each process runs, e.g. -- pretrain --model opt-125m.")
    var command: [String] = []

    func validate() throws {
        guard nprocPerNode >= 1 else { throw ValidationError("--nproc-per-node must be at least 1, not \(nprocPerNode)") }
        guard nnodes >= 1 else { throw ValidationError("--nnodes must be at least 1, not \(nnodes)") }
        guard (0..<nnodes).contains(nodeRank) else { throw ValidationError("--node-rank must be in 0 ..< \(nnodes) (--nnodes), not \(nodeRank)") }
        guard (1...65_535).contains(masterPort) else { throw ValidationError("--master-port must be a TCP port (1 … 65535), not \(masterPort)") }
        guard gracePeriod.isFinite, gracePeriod >= 0 else { throw ValidationError("--grace-period must be a number of seconds ≥ 0") }
        guard let first = arguments.first else {
            throw ValidationError("name the command each process runs after --, e.g. slope launch --nproc-per-node 2 -- pretrain --model opt-125m")
        }
        guard first == "pretrain" else {
            throw ValidationError("slope launch runs pretrain (the command that trains data-parallel), not \(first)")
        }
    }

    /// The command after `--` (ArgumentParser keeps the separator in the captured arguments).
    var arguments: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    /// The variables of local process `local`, on top of this process's own.
    func environment(local: Int, inheriting inherited: [String: String]) -> [String: String] {
        inherited.merging([
            "RANK": "\(nodeRank * nprocPerNode + local)", "WORLD_SIZE": "\(nnodes * nprocPerNode)", "LOCAL_RANK": "\(local)",
            "LOCAL_WORLD_SIZE": "\(nprocPerNode)", "MASTER_ADDR": masterAddr, "MASTER_PORT": "\(masterPort)",
        ]) { $1 }
    }

    func run() throws {
        let executable = ChildProcess.ownExecutable()
        installForwardingHandlers()
        var children: [ChildProcess] = []
        for local in 0..<nprocPerNode {
            do {
                children.append(try ChildProcess.spawn(
                    executable, arguments: arguments, environment: environment(local: local, inheriting: ProcessInfo.processInfo.environment),
                    rank: nodeRank * nprocPerNode + local))
            } catch {
                for child in children { child.signal(SIGKILL) }
                throw error
            }
        }
        let failures = supervise(children)
        guard let cause = Self.cause(of: failures) else { return }
        let stoppedBySignal = launchSignalCount.load(ordering: .relaxed) > 0 && failures.allSatisfy { $0.status == .exited(130) }
        if !stoppedBySignal {
            let others = failures.filter { $0.rank != cause.rank }.map(\.description)
            printError("error: slope launch: \(cause.description)" + (others.isEmpty ? "" : "; then \(others.joined(separator: ", "))"))
        }
        throw ExitCode(cause.exitCode)
    }

    struct Failure: Equatable {
        let rank: Int
        let status: ChildProcess.Status
        /// Whether slope launch had signalled the process (stopping the job) before it ended.
        var signalledByLaunch = false
        var description: String { "rank \(rank) \(status)" }
        var exitCode: Int32 {
            switch status {
            case .exited(let code): code
            case .signalled(let number): 128 + number
            }
        }
    }

    /// The failure that most likely caused the others: a rank killed by a signal slope launch did not send (a
    /// crash, the out-of-memory killer), else the first to end. The others usually exit with status 1 because a
    /// peer stopped, and may be reaped first.
    static func cause(of failures: [Failure]) -> Failure? {
        failures.first { if case .signalled = $0.status { !$0.signalledByLaunch } else { false } } ?? failures.first
    }

    /// Waits for every child; forwards signals; after the first failure, gives the others `gracePeriod` seconds
    /// (SIGTERM: they stop together and rank 0 checkpoints) and then kills them. Returns the failures in the
    /// order they were seen.
    func supervise(_ children: [ChildProcess]) -> [Failure] {
        var running = Dictionary(uniqueKeysWithValues: children.map { ($0.pid, $0) })
        var failures: [Failure] = []
        var signalled: Set<pid_t> = []
        var killAt: Double?
        var forwarded = 0
        while !running.isEmpty {
            // The children have process groups of their own (a terminal's Ctrl-C reaches only this process), so each
            // signal is passed on once: the first stops the job after its step, a second stops it at once.
            let received = launchSignalCount.load(ordering: .relaxed)
            if received > forwarded {
                for child in running.values { child.signal(launchLastSignal.load(ordering: .relaxed)) }
                signalled.formUnion(running.keys)
                forwarded = received
                killAt = killAt ?? (ChildProcess.now() + gracePeriod)
            }
            if let deadline = killAt, ChildProcess.now() >= deadline {
                for child in running.values { child.signal(SIGKILL) }
                signalled.formUnion(running.keys)
                killAt = .infinity
            }
            // Every process that has ended by now, before acting on any: a rank that failed first must not be
            // counted as stopped by slope launch because a peer that noticed it was reaped before it.
            var ended: [(pid_t, ChildProcess.Status)] = []
            while let next = ChildProcess.reap() { ended.append(next) }
            guard !ended.isEmpty else {
                usleep(50_000)
                continue
            }
            let firstFailure = failures.isEmpty
            for (pid, status) in ended {
                guard let child = running.removeValue(forKey: pid), status != .exited(0) else { continue }
                failures.append(Failure(rank: child.rank, status: status, signalledByLaunch: signalled.contains(pid)))
            }
            if firstFailure, let failure = Self.cause(of: failures), forwarded == 0, !running.isEmpty {
                printError("slope launch: \(failure.description); stopping the other \(running.count) rank\(running.count == 1 ? "" : "s")")
                for other in running.values { other.signal(SIGTERM) }
                signalled.formUnion(running.keys)
                killAt = ChildProcess.now() + gracePeriod
            }
        }
        return failures
    }
}

/// Signals received by `slope launch` (how many, and the last), for its loop to pass on to the children. Atomics:
/// a signal handler may not take locks.
let launchSignalCount = Atomic<Int>(0)
let launchLastSignal = Atomic<Int32>(0)

private func installForwardingHandlers() {
    for number in [SIGINT, SIGTERM] {
        signal(number) { received in
            launchLastSignal.store(received, ordering: .relaxed)
            launchSignalCount.add(1, ordering: .relaxed)
        }
    }
}
