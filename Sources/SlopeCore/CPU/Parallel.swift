import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Number of worker threads the CPU backend uses: `SLOPE_NUM_THREADS`, else the online core count.
let cpuThreadCount: Int = {
    if let text = getenv("SLOPE_NUM_THREADS"), let value = Int(String(cString: text)), value > 0 {
        return value
    }
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}()

/// Runs `body` over `0..<count` split into contiguous chunks on up to `cpuThreadCount` threads.
/// Work below `grain` elements per thread runs inline: threads cost more than they save there.
@inline(__always)
func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    let chunks = min(cpuThreadCount, max(1, count / max(grain, 1)))
    if chunks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let chunkSize = (count + chunks - 1) / chunks
    withoutActuallyEscaping(body) { body in
        // The chunks touch disjoint ranges and the call returns only after all of them: sharing is safe.
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * chunkSize
            let end = min(count, start + chunkSize)
            if start < end { shared.value(start..<end) }
        }
    }
}

struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
