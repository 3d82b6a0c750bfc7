import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// One process `slope launch` started: spawned in a process group of its own, signalled and reaped by pid.
struct ChildProcess {
    let pid: pid_t
    let rank: Int

    enum Status: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let number): "was killed by signal \(number)" + (number == SIGKILL ? " (SIGKILL: out of host memory?)" : "")
            }
        }
    }

    /// The path of the running slope executable (what the children run).
    static func ownExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return length > 0 ? String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    static func spawn(_ executable: String, arguments: [String], environment: [String: String], rank: Int) throws -> ChildProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, nil, &attributes, argv, envp)
        guard result == 0 else {
            throw ValidationError("slope launch: cannot start \(executable) for rank \(rank): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid, rank: rank)
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// A child that has ended, if any (without waiting).
    static func reap() -> (pid_t, Status)? {
        var raw: Int32 = 0
        let pid = waitpid(-1, &raw, WNOHANG)
        guard pid > 0 else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as macros.
        let signalled = raw & 0x7f
        return (pid, signalled == 0 ? .exited((raw >> 8) & 0xff) : .signalled(signalled))
    }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
