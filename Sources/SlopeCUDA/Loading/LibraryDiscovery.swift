/// Where to look for a CUDA library, in order:
/// 1. every folder in `SLOPE_CUDA_LIBS` (colon-separated),
/// 2. the dynamic loader's own search (LD_LIBRARY_PATH, ldconfig) by bare file name,
/// 3. `/usr/local/cuda*/lib64` and `/usr/local/cuda*/targets/*/lib`,
/// 4. pip installs: `*/site-packages/nvidia/{cu13,<library>}/lib` under the usual Python prefixes.
///
/// File-system access is injected so the order can be tested with fake folders.
public struct LibraryDiscovery: Sendable {
    /// One place to try.
    public enum Candidate: Hashable, Sendable, CustomStringConvertible {
        /// A full path to a file that exists.
        case file(String)
        /// A bare name handed to the dynamic loader.
        case loaderName(String)

        public var description: String {
            switch self {
            case .file(let path): return path
            case .loaderName(let name): return "\(name) (loader search path)"
            }
        }
    }

    public var environment: [String: String]
    public var fileExists: @Sendable (String) -> Bool
    public var listDirectory: @Sendable (String) -> [String]
    /// Folder patterns (`*` matches within one path component) of CUDA toolkit library folders.
    public var toolkitPatterns = ["/usr/local/cuda*/lib64", "/usr/local/cuda*/targets/*/lib"]
    /// Folder patterns of Python `site-packages` folders where pip puts NVIDIA wheels.
    public var sitePackagesPatterns = [
        "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
        "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
        "/opt/*/lib/python3*/site-packages", "/opt/*/.venv/lib/python3*/site-packages",
        "/opt/conda/lib/python3*/site-packages",
    ]

    public init(
        environment: [String: String], fileExists: @escaping @Sendable (String) -> Bool,
        listDirectory: @escaping @Sendable (String) -> [String]
    ) {
        self.environment = environment
        self.fileExists = fileExists
        self.listDirectory = listDirectory
    }

    /// All places to try for `library`, in order, without duplicates.
    public func candidates(for library: CUDALibrary) -> [Candidate] {
        var result: [Candidate] = []
        func addFiles(in folder: String) {
            for name in library.fileNames {
                let path = folder.hasSuffix("/") ? folder + name : folder + "/" + name
                if fileExists(path), !result.contains(.file(path)) { result.append(.file(path)) }
            }
        }
        for folder in (environment["SLOPE_CUDA_LIBS"] ?? "").split(separator: ":") where !folder.isEmpty {
            addFiles(in: String(folder))
        }
        result += library.fileNames.map(Candidate.loaderName)
        for pattern in toolkitPatterns { for folder in expand(pattern) { addFiles(in: folder) } }
        var sitePackages = sitePackagesPatterns
        if let venv = environment["VIRTUAL_ENV"] { sitePackages.insert("\(venv)/lib/python3*/site-packages", at: 0) }
        if let home = environment["HOME"] { sitePackages.append("\(home)/.local/lib/python3*/site-packages") }
        for pattern in sitePackages {
            for folder in expand(pattern) {
                for sub in ["cu13"] + library.pipFolders { addFiles(in: "\(folder)/nvidia/\(sub)/lib") }
            }
        }
        return result
    }

    /// The folders matching `pattern`, where `*` matches any run of characters inside one path component.
    func expand(_ pattern: String) -> [String] {
        var paths = [""]
        for component in pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            if component.contains("*") {
                paths = paths.flatMap { base in
                    listDirectory(base.isEmpty ? "/" : base).sorted().filter { wildcardMatch(component, $0) }.map { "\(base)/\($0)" }
                }
            } else {
                paths = paths.map { "\($0)/\(component)" }
            }
            if paths.isEmpty { return [] }
        }
        return paths
    }
}

/// `*` matches any run of characters; everything else matches itself.
func wildcardMatch(_ pattern: String, _ text: String) -> Bool {
    let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
    guard parts.count > 1 else { return pattern == text }
    guard text.hasPrefix(parts[0]), text.hasSuffix(parts[parts.count - 1]),
          text.count >= parts[0].count + parts[parts.count - 1].count else { return false }
    var rest = Substring(text.dropFirst(parts[0].count).dropLast(parts[parts.count - 1].count))
    for middle in parts.dropFirst().dropLast() where !middle.isEmpty {
        guard let range = rest.firstRange(of: middle) else { return false }
        rest = rest[range.upperBound...]
    }
    return true
}
