#if canImport(Glibc)
import Glibc
#endif
import SlopeCore

/// Waits for a stream's work that includes collectives without hanging on a peer that is gone: polls the stream
/// and the communicator's asynchronous error until the work is done, an error shows, or the deadline passes —
/// then the caller aborts the communicator (NCCL's own kernels would otherwise wait for the peer forever; across
/// nodes nothing else would stop them). The polling is separate from CUDA and NCCL, so it is tested on the CPU.
enum CollectiveWatchdog {
    /// What one look at the work says.
    enum Poll: Equatable {
        case done
        case running
        /// The stream or the communicator reported an error (its text).
        case failed(String)
    }

    enum Failure: Error, Equatable, CustomStringConvertible {
        case timedOut(seconds: Double, what: String)
        case failed(what: String, reason: String)

        var description: String {
            switch self {
            case let .timedOut(seconds, what):
                "\(what) did not finish within \(Self.format(seconds)) s: a rank is gone or stuck (on another node, or killed). The communicator "
                    + "was aborted; check every rank's log and restart from the last checkpoint with --resume (SLOPE_DISTRIBUTED_TIMEOUT sets the limit)"
            case let .failed(what, reason):
                "\(what) failed: \(reason). The communicator was aborted; restart from the last checkpoint with --resume"
            }
        }

        private static func format(_ seconds: Double) -> String {
            seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
        }
    }

    /// Polls until `poll` says done (returns), failed or the `timeout` passes (throws; `abort` has been called
    /// then). Sleeps `interval` seconds between looks after the first few, so a short wait costs no latency.
    static func wait(
        for what: String, timeout: Double, interval: Double = 0.001, now: () -> Double = Self.monotonicSeconds,
        sleep: (Double) -> Void = Self.sleep, abort: () -> Void, poll: () -> Poll
    ) throws {
        let deadline = now() + timeout
        var looks = 0
        while true {
            switch poll() {
            case .done: return
            case .failed(let reason):
                abort()
                throw Failure.failed(what: what, reason: reason)
            case .running:
                if now() >= deadline {
                    abort()
                    throw Failure.timedOut(seconds: timeout, what: what)
                }
                looks += 1
                if looks > 100 { sleep(interval) }
            }
        }
    }

    static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    static func sleep(_ seconds: Double) { usleep(UInt32(max(0, seconds) * 1e6)) }
}

extension NCCLCommunicator {
    /// Returns once everything issued on the backend's stream so far (this communicator's collectives included)
    /// is done; aborts the communicator and throws if a collective fails or it takes longer than `timeout` seconds.
    public func waitForCollectives(timeout: Double) throws {
        let device = backend.cudaDevice
        let driver = device.driver
        try device.makeCurrent()
        try CollectiveWatchdog.wait(for: "rank \(rank)'s collectives (\(worldSize) ranks)", timeout: timeout, abort: abort) {
            let status = driver.cuStreamQuery(device.stream)
            if status == 0 { return .done }  // CUDA_SUCCESS
            if status != 600 { return .failed("cuStreamQuery returned CUDA error \(status)") }  // 600: not ready
            guard let error = asyncError(), error != 0, error != 7 else { return .running }  // 7: ncclInProgress
            return .failed("NCCL reported \(api.ncclGetErrorString(error).map { String(cString: $0) } ?? "error") (\(error))")
        }
    }
}
