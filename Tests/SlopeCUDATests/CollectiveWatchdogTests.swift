@testable import SlopeCUDA
import XCTest

/// The host side of waiting for collectives without hanging: the watchdog's polling, with a fake clock.
final class CollectiveWatchdogTests: XCTestCase {
    final class Clock {
        var seconds = 100.0
        var sleeps: [Double] = []
        var aborts = 0
    }

    func testReturnsOnceTheWorkIsDoneWithoutAborting() throws {
        let clock = Clock()
        var looks = 0
        try CollectiveWatchdog.wait(
            for: "rank 0's collectives", timeout: 5, now: { clock.seconds }, sleep: { clock.sleeps.append($0) }, abort: { clock.aborts += 1 }
        ) {
            looks += 1
            clock.seconds += 0.01
            return looks < 150 ? .running : .done
        }
        XCTAssertEqual(looks, 150)
        XCTAssertEqual(clock.aborts, 0)
        XCTAssertEqual(clock.sleeps.count, 49, "the first 100 looks spin, later ones sleep between looks")
    }

    func testAPeerThatNeverComesTimesOutAbortsAndSaysWhatToDo() {
        let clock = Clock()
        XCTAssertThrowsError(try CollectiveWatchdog.wait(
            for: "rank 1's collectives (2 ranks)", timeout: 2, now: { clock.seconds }, sleep: { clock.sleeps.append($0) },
            abort: { clock.aborts += 1 }
        ) {
            clock.seconds += 0.5
            return .running
        }) { error in
            XCTAssertEqual(error as? CollectiveWatchdog.Failure, .timedOut(seconds: 2, what: "rank 1's collectives (2 ranks)"))
            let text = "\(error)"
            XCTAssertTrue(text.contains("did not finish within 2 s") && text.contains("--resume") && text.contains("SLOPE_DISTRIBUTED_TIMEOUT"), text)
        }
        XCTAssertEqual(clock.aborts, 1, "the communicator is aborted, so NCCL's kernels stop waiting")
        XCTAssertEqual(clock.seconds, 102, "it gave up at the deadline, not before")
    }

    func testAReportedErrorAbortsAtOnce() {
        let clock = Clock()
        var looks = 0
        XCTAssertThrowsError(try CollectiveWatchdog.wait(
            for: "rank 0's collectives", timeout: 600, now: { clock.seconds }, sleep: { _ in }, abort: { clock.aborts += 1 }
        ) {
            looks += 1
            return looks < 3 ? .running : .failed("NCCL reported remote process exited or there was a network error (6)")
        }) { error in
            XCTAssertTrue("\(error)".contains("failed: NCCL reported remote process exited"), "\(error)")
        }
        XCTAssertEqual(looks, 3)
        XCTAssertEqual(clock.aborts, 1)
    }
}
