#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads byte ranges of a file with pread(2), so a large file (a checkpoint of billions of weights) is
/// consumed one piece at a time instead of being loaded whole.
public enum FileBytes {
    public struct ReadFailure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot read \(path): \(reason)" }
    }

    /// The file's size in bytes.
    public static func size(of path: String) throws -> Int { try attributes(of: path).size }

    /// A regular file's size in bytes and modification time (seconds since 1970, with the nanoseconds).
    public static func attributes(of path: String) throws -> (size: Int, modified: Double) {
        var status = stat()
        guard stat(path, &status) == 0 else { throw ReadFailure(path: path, reason: systemErrorText()) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw ReadFailure(path: path, reason: "not a regular file") }
        #if canImport(Darwin)
        let time = status.st_mtimespec
        #else
        let time = status.st_mtim
        #endif
        return (Int(status.st_size), Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
    }

    /// Bytes `offset ..< offset + count`; a file shorter than that is an error.
    public static func read(_ path: String, offset: Int, count: Int) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ReadFailure(path: path, reason: systemErrorText()) }
        defer { close(descriptor) }
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let got = pread(descriptor, buffer.baseAddress! + done, min(count - done, 1 << 30), off_t(offset + done))
                if got < 0 {
                    if errno == EINTR { continue }
                    throw ReadFailure(path: path, reason: systemErrorText())
                }
                if got == 0 { throw ReadFailure(path: path, reason: "the file ends at byte \(offset + done), before \(offset + count)") }
                done += got
            }
            initialized = count
        }
    }
}

/// The message for the last failed system call's errno (shared by the file reader and writer).
func systemErrorText() -> String { String(cString: strerror(errno)) }
