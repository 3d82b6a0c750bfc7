import FoundationEssentials
import SLoPe
import SlopeCore
import SlopeCUDA

/// Median wall time of `body` in milliseconds over `repeats` runs after `warmup` runs.
func medianMilliseconds(repeats: Int, warmup: Int, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    let clock = ContinuousClock()
    var samples: [Double] = []
    for _ in 0..<repeats {
        let elapsed = try clock.measure(body)
        samples.append(elapsed / .milliseconds(1))
    }
    return median(samples)
}

/// The middle value (the mean of the two middle ones for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Median milliseconds of a body over `TimingOptions`' runs, on the clock that fits the device.
typealias MedianTimer = (() throws -> Void) throws -> Double

extension BenchDevice {
    /// The backend to benchmark, the timer for it (CUDA events on the GPU, wall clock on the CPU) and how it
    /// times, for the header line ("median of 50 runs after 10 warm-up (CUDA events)").
    func backend(_ timing: TimingOptions) throws -> (backend: any Backend, time: MedianTimer, clock: String) {
        let (repeats, warmup) = timing.runs(on: self)
        let described = "median of \(repeats) runs after \(warmup) warm-up"
        switch self {
        case .cpu:
            return (CPUBackend(), { body in try medianMilliseconds(repeats: repeats, warmup: warmup, body) }, described + " (wall clock)")
        case .cuda:
            let gpu = try CUDABackend()
            return (gpu, { body in try gpu.medianMilliseconds(repeats: repeats, warmup: warmup, body) }, described + " (CUDA events)")
        }
    }
}

/// A plain fixed-width text table.
struct TextTable {
    let headers: [String]
    var rows: [[String]] = []

    mutating func append(_ row: [String]) { rows.append(row) }

    func render() -> String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}

func formatted(_ value: Double, digits: Int = 2) -> String { fixedPoint(value, decimals: digits) }

/// Writes any Encodable as pretty JSON, creating nothing but the file itself.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFile.write(encoder.encode(value), to: path)
}
