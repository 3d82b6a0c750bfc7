/// The CUDA libraries, each loaded once per process on first use. A library that is missing does not
/// stop the others from loading, so `slope doctor` can report each one.
public enum CUDALibraries {
    static let driverResult = Result { try DriverAPI(DynamicLibrary.open(.driver)) }
    static let nvrtcResult = Result { try NVRTCAPI(DynamicLibrary.open(.nvrtc)) }
    static let cublasLtResult = Result { try CuBLASLtAPI(DynamicLibrary.open(.cublasLt)) }
    static let cusparseLtResult = Result { try CuSPARSELtAPI(DynamicLibrary.open(.cusparseLt)) }
    static let cudnnResult = Result { try CuDNNAPI(DynamicLibrary.open(.cudnn)) }

    static func driver() throws -> DriverAPI { try driverResult.get() }
    static func nvrtc() throws -> NVRTCAPI { try nvrtcResult.get() }
    static func cublasLt() throws -> CuBLASLtAPI { try cublasLtResult.get() }
    static func cusparseLt() throws -> CuSPARSELtAPI { try cusparseLtResult.get() }
    static func cudnn() throws -> CuDNNAPI { try cudnnResult.get() }

    /// Where each library was found, or why it could not be used.
    public static func report() -> [(library: CUDALibrary, outcome: Result<String, any Error>)] {
        [
            (.driver, driverResult.map(\.library.location)),
            (.nvrtc, nvrtcResult.map(\.library.location)),
            (.cublasLt, cublasLtResult.map(\.library.location)),
            (.cusparseLt, cusparseLtResult.map(\.library.location)),
            (.cudnn, cudnnResult.map { "\($0.library.location) (\($0.versionText))" }),
        ]
    }
}
