import CCUDA

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen`, kept open for the life of the process.
public final class DynamicLibrary: @unchecked Sendable {
    public let library: CUDALibrary
    /// The path or loader name that opened.
    public let location: String
    private let handle: UnsafeMutableRawPointer

    private init(library: CUDALibrary, location: String, handle: UnsafeMutableRawPointer) {
        self.library = library
        self.location = location
        self.handle = handle
    }

    /// Tries every candidate of `discovery` in order; throws ``CUDAError/libraryNotFound(library:searched:provider:)``
    /// naming where it looked and what to install.
    public static func open(_ library: CUDALibrary, discovery: LibraryDiscovery = .system) throws -> DynamicLibrary {
        var searched: [String] = []
        for candidate in discovery.candidates(for: library) {
            let name: String
            switch candidate {
            case .file(let path): name = path
            case .loaderName(let bare): name = bare
            }
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) {
                return DynamicLibrary(library: library, location: resolvedPath(handle) ?? name, handle: handle)
            }
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            searched.append(reason.contains(name) ? reason : "\(candidate): \(reason)")
        }
        throw CUDAError.libraryNotFound(library: library.name, searched: searched, provider: library.provider)
    }

    /// The symbol `name` as the C function-pointer type `T`.
    public func symbol<T>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let pointer = dlsym(handle, name) else {
            throw CUDAError.symbolNotFound(symbol: name, library: library.name, path: location)
        }
        return unsafeBitCast(pointer, to: type)
    }

    /// The first of `names` that the library exports (versioned entry points such as `cuMemAlloc_v2`).
    public func symbol<T>(firstOf names: [String], as type: T.Type = T.self) throws -> T {
        for name in names {
            if let pointer = dlsym(handle, name) { return unsafeBitCast(pointer, to: type) }
        }
        throw CUDAError.symbolNotFound(symbol: names.joined(separator: " or "), library: library.name, path: location)
    }

    private static func resolvedPath(_ handle: UnsafeMutableRawPointer) -> String? {
        guard let name = slope_dl_path(handle) else { return nil }
        let path = String(cString: name)
        return path.isEmpty ? nil : path
    }
}

extension LibraryDiscovery {
    /// Discovery over the real file system and process environment.
    public static var system: LibraryDiscovery {
        var environment: [String: String] = [:]
        for key in ["SLOPE_CUDA_LIBS", "VIRTUAL_ENV", "HOME"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return LibraryDiscovery(
            environment: environment,
            fileExists: { access($0, F_OK) == 0 },
            listDirectory: { path in
                guard let directory = opendir(path) else { return [] }
                defer { closedir(directory) }
                var names: [String] = []
                while let entry = readdir(directory) {
                    let name = withUnsafePointer(to: entry.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                return names
            })
    }
}
