import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT / SIGTERM received, checked between training steps so the run can save a checkpoint and exit.
let stopSignal = Atomic<Int32>(0)

/// Routes SIGINT and SIGTERM to ``stopSignal``; a second signal kills the process at once.
func installStopHandlers() {
    for number in [SIGINT, SIGTERM] {
        signal(number) { received in
            stopSignal.store(received, ordering: .relaxed)
            signal(received, SIG_DFL)
        }
    }
}
