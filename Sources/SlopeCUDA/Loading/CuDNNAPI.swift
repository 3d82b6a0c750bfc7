import CCUDA

/// cuDNN's entry points, resolved from libcudnn at run time: the handle and the backend (graph) API, which is all
/// slope uses (for the fused attention engines). Missing cuDNN only removes the `cudnn` attention route.
struct CuDNNAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cudnnGetVersion: slope_cudnnGetVersion_fn
    let cudnnCreate: slope_cudnnCreate_fn
    let cudnnDestroy: slope_cudnnDestroy_fn
    let cudnnSetStream: slope_cudnnSetStream_fn
    let cudnnGetErrorString: slope_cudnnGetErrorString_fn
    /// cuDNN ≥ 9.0 keeps the last failure's explanation; older builds lack it.
    let cudnnGetLastErrorString: slope_cudnnGetLastErrorString_fn?
    let cudnnBackendCreateDescriptor: slope_cudnnBackendCreateDescriptor_fn
    let cudnnBackendDestroyDescriptor: slope_cudnnBackendDestroyDescriptor_fn
    let cudnnBackendFinalize: slope_cudnnBackendFinalize_fn
    let cudnnBackendSetAttribute: slope_cudnnBackendSetAttribute_fn
    let cudnnBackendGetAttribute: slope_cudnnBackendGetAttribute_fn
    let cudnnBackendExecute: slope_cudnnBackendExecute_fn
    /// major·10000 + minor·100 + patch (cuDNN 9's encoding), read once.
    let version: Int

    init(_ library: DynamicLibrary) throws {
        self.library = library
        cudnnGetVersion = try library.symbol("cudnnGetVersion")
        cudnnCreate = try library.symbol("cudnnCreate")
        cudnnDestroy = try library.symbol("cudnnDestroy")
        cudnnSetStream = try library.symbol("cudnnSetStream")
        cudnnGetErrorString = try library.symbol("cudnnGetErrorString")
        cudnnGetLastErrorString = try? library.symbol("cudnnGetLastErrorString")
        cudnnBackendCreateDescriptor = try library.symbol("cudnnBackendCreateDescriptor")
        cudnnBackendDestroyDescriptor = try library.symbol("cudnnBackendDestroyDescriptor")
        cudnnBackendFinalize = try library.symbol("cudnnBackendFinalize")
        cudnnBackendSetAttribute = try library.symbol("cudnnBackendSetAttribute")
        cudnnBackendGetAttribute = try library.symbol("cudnnBackendGetAttribute")
        cudnnBackendExecute = try library.symbol("cudnnBackendExecute")
        version = cudnnGetVersion()
        guard version >= 90_000 else {
            throw CUDAError.symbolNotFound(
                symbol: "cuDNN 9 (found version \(version))", library: library.library.name, path: library.location)
        }
    }

    /// The version as "9.13.0" (cuDNN 9 encodes major·10000 + minor·100 + patch).
    var versionText: String { "\(version / 10_000).\(version % 10_000 / 100).\(version % 100)" }

    /// Throws ``CUDAError/callFailed(call:library:status:)`` naming `call`, with cuDNN's own explanation of the
    /// failure appended to the call where it gives one.
    func check(_ status: cudnnStatus_t, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var detail = ""
        if let lastError = cudnnGetLastErrorString {
            var buffer = [CChar](repeating: 0, count: 1024)
            lastError(&buffer, buffer.count)
            detail = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        throw CUDAError.callFailed(call: detail.isEmpty ? call() : "\(call()) (\(detail))", library: .cudnn, status: status)
    }
}
