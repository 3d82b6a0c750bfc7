#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Free space on a file system, so that a long run can say at its start that its checkpoint will not fit
/// instead of failing when it writes it.
public enum DiskSpace {
    /// Bytes an unprivileged process may still write on the volume holding `path` (a file or folder that
    /// exists); nil where the system cannot tell.
    public static func availableBytes(at path: String) -> Int? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }
}
