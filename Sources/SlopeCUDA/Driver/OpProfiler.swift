import SlopeCore
import Synchronization

/// GPU time per operation, on when `SLOPE_PROFILE=1`: every kernel launch, cuBLASLt and cuSPARSELt call is
/// bracketed by stream synchronisations and timed on the host. This serialises the GPU (slower overall)
/// but attributes each microsecond to one named op, which is what finding the slow part needs. It also notes
/// during (or just before) which op device memory peaked.
public final class OpProfiler: Sendable {
    private struct Total {
        var calls = 0
        var seconds = 0.0
    }

    private let totals = Mutex<[String: Total]>([:])
    private let clock = ContinuousClock()
    /// The allocator's peak since a mark, and the mark (set by the backend that owns the allocator).
    private let memory = Mutex<(peak: @Sendable () -> Int, mark: @Sendable () -> Void)?>(nil)
    /// The most bytes in use and the op during or just before which they were reached: where memory peaks.
    private let highWater = Mutex<(bytes: Int, op: String)>((0, ""))
    /// Open `suspending` calls: while any is, ops run unmeasured.
    private let suspensions = Mutex(0)

    /// Reads `peakSinceMark` after every op to report where memory peaks; `mark` starts a new window.
    func watchMemory(peakSinceMark: @escaping @Sendable () -> Int, mark: @escaping @Sendable () -> Void) {
        mark()
        memory.withLock { $0 = (peakSinceMark, mark) }
    }

    /// The profiler when `SLOPE_PROFILE` is set to 1, else nil.
    static func fromEnvironment() -> OpProfiler? {
        processEnvironment(["SLOPE_PROFILE"])["SLOPE_PROFILE"] == "1" ? OpProfiler() : nil
    }

    /// Runs `body` with measuring switched off (nesting allowed).
    func suspending<R>(_ body: () throws -> R) rethrows -> R {
        suspensions.withLock { $0 += 1 }
        defer { suspensions.withLock { $0 -= 1 } }
        return try body()
    }

    /// Times `body` between two calls of `synchronize` (the device's stream) under `name`.
    func measure<R>(_ name: String, synchronize: () throws -> Void, _ body: () throws -> R) throws -> R {
        if suspensions.withLock({ $0 }) > 0 { return try body() }
        try synchronize()
        let start = clock.now
        let result = try body()
        try synchronize()
        let elapsed = clock.now - start
        let seconds = elapsed / .seconds(1)
        totals.withLock { $0[name, default: Total()].calls += 1; $0[name, default: Total()].seconds += seconds }
        if let bytes = memory.withLock({ $0 })?.peak() {  // (a rise since the last op: this op's buffers, or made just for it)
            highWater.withLock { if bytes > $0.bytes { $0 = (bytes, name) } }
        }
        return result
    }

    /// Forgets what was measured so far (e.g. a first training step's compilation and plan search).
    public func reset() {
        totals.withLock { $0.removeAll() }
        highWater.withLock { $0 = (0, "") }
        memory.withLock { $0 }?.mark()
    }

    /// The `top` most expensive ops: calls, total and share of the profiled time.
    public func report(top: Int = 30) -> String {
        let rows = totals.withLock { $0 }.sorted { $0.value.seconds > $1.value.seconds }
        let total = rows.map(\.value.seconds).reduce(0, +)
        var lines = ["GPU time by op (SLOPE_PROFILE=1; \(rows.count) ops, \(Self.format(total * 1e3)) ms in total)"]
        for (name, entry) in rows.prefix(top) {
            lines.append("  \(Self.format(entry.seconds * 1e3).leftPadded(10)) ms  \(Self.format(100 * entry.seconds / max(total, 1e-12)).leftPadded(5))%  "
                + "\(String(entry.calls).leftPadded(6))×  \(name)")
        }
        if let memory = memoryHighWater { lines.append(memory) }
        return lines.joined(separator: "\n")
    }

    /// The most device memory in use since the start or the last reset, and the op it was reached for.
    public var memoryHighWater: String? {
        let peak = highWater.withLock { $0 }
        return peak.bytes > 0 ? "most memory in use: \(byteCountText(peak.bytes)), reached during or just before \(peak.op)" : nil
    }

    private static func format(_ value: Double) -> String { fixedPoint(value, decimals: 1) }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
