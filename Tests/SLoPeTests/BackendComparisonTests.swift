import SLoPe
import XCTest

/// The doctor's check suite itself: on two CPU backends every check must run and agree exactly.
final class BackendComparisonTests: XCTestCase {
    func testEveryCheckRunsAndAgreesOnIdenticalBackends() {
        let comparison = BackendComparison(reference: CPUBackend(), candidate: CPUBackend(recordsWork: true))
        let checks = comparison.runAll(dtypes: [.float32, .bfloat16]) + comparison.runModelChecks() + comparison.runCheckpointCheck()
        XCTAssertGreaterThan(checks.count, 60)
        XCTAssertEqual(checks.filter { $0.name.hasPrefix("model ") }.count, 21,
                       "GPT/OPT, LLaMA, GPT/OPT at head dimension 80, LLaMA at 96; dense and SLoPe each, cached generation, recorded decode steps; BERT dense and SLoPe padded, dense with the padding kept and unpadded, SLoPe with dropout")
        XCTAssertEqual(checks.filter { $0.name.contains("dropout") && $0.name.hasPrefix("attention") }.count, 4, "two dropout shapes, two dtypes")
        for check in checks {
            XCTAssertNil(check.failure, "\(check.name) \(check.dtype): \(check.failure ?? "")")
            XCTAssertEqual(check.error, 0, "\(check.name) \(check.dtype)")
            XCTAssertTrue(check.passed)
        }
    }

    func testTolerancesFollowTheDesign() {
        XCTAssertEqual(BackendComparison.tolerance(for: .float32), 1e-5)
        XCTAssertEqual(BackendComparison.tolerance(for: .bfloat16), 2e-2)
    }
}
