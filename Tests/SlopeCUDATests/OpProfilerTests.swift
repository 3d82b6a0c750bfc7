@testable import SlopeCUDA
import XCTest

final class OpProfilerTests: XCTestCase {
    /// Measured ops are counted, bracketed by synchronisations, and the memory peak is pinned on the op it was
    /// reached for; ops run while measuring is suspended (a route decision timing ops itself) are neither
    /// synchronised nor counted, also when suspensions nest.
    func testSuspendedOpsAreNeitherSynchronisedNorCounted() throws {
        let profiler = OpProfiler()
        final class Peak: @unchecked Sendable { var bytes = 0 }  // (one thread)
        let peak = Peak()
        profiler.watchMemory(peakSinceMark: { peak.bytes }, mark: { peak.bytes = 0 })
        var synchronisations = 0
        let synchronize = { synchronisations += 1 }

        peak.bytes = 1 << 30
        XCTAssertEqual(try profiler.measure("gemm", synchronize: synchronize) { 7 }, 7)
        XCTAssertEqual(synchronisations, 2)
        try profiler.suspending {
            try profiler.suspending {
                peak.bytes = 3 << 30
                _ = try profiler.measure("timed alone", synchronize: synchronize) {}
            }
            _ = try profiler.measure("timed alone", synchronize: synchronize) {}
        }
        XCTAssertEqual(synchronisations, 2, "suspended ops must not synchronise")
        _ = try profiler.measure("after", synchronize: synchronize) {}
        XCTAssertEqual(synchronisations, 4, "measuring resumes once the outer suspension ends")

        let report = profiler.report()
        XCTAssertTrue(report.contains("gemm") && report.contains("after"), report)
        XCTAssertFalse(report.contains("timed alone"), report)
        XCTAssertTrue(report.contains("3.00 GiB, reached during or just before after"), report)
    }
}
