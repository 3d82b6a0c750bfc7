#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The host's memory, as the system reports it.
public enum HostMemory {
    /// Physical memory in bytes; nil where the system does not say.
    public static var physicalBytes: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        return CheckedSize.product([pages, size])
    }
}
