import CCUDA

/// One cuDNN backend descriptor (a tensor, an operation, a graph, a plan …), destroyed with this object. Attributes
/// are set by name with a typed value; `finalize()` makes cuDNN check and freeze it.
final class CuDNNDescriptor: @unchecked Sendable {
    let api: CuDNNAPI
    let raw: cudnnBackendDescriptor_t
    let kind: CuDNN.DescriptorType

    init(_ kind: CuDNN.DescriptorType, api: CuDNNAPI) throws {
        self.api = api
        self.kind = kind
        var raw: cudnnBackendDescriptor_t?
        try api.check(api.cudnnBackendCreateDescriptor(kind.rawValue, &raw), "cudnnBackendCreateDescriptor(\(kind))")
        guard let raw else { throw CUDAError.callFailed(call: "cudnnBackendCreateDescriptor(\(kind))", library: .cudnn, status: 2002) }
        self.raw = raw
    }

    /// A descriptor with `configure`'s attributes, finalized.
    convenience init(_ kind: CuDNN.DescriptorType, api: CuDNNAPI, finalizing configure: (CuDNNDescriptor) throws -> Void) throws {
        try self.init(kind, api: api)
        try configure(self)
        try finalize()
    }

    deinit { _ = api.cudnnBackendDestroyDescriptor(raw) }

    private func set(_ name: CuDNN.Attribute, _ type: CuDNN.AttributeType, count: Int, _ elements: UnsafeRawPointer) throws {
        try api.check(
            api.cudnnBackendSetAttribute(raw, name.rawValue, type.rawValue, Int64(count), elements),
            "cudnnBackendSetAttribute(\(kind), \(name))")
    }

    func set(_ name: CuDNN.Attribute, int64s values: [Int64]) throws {
        try values.withUnsafeBytes { try set(name, .int64, count: values.count, $0.baseAddress!) }
    }

    func set(_ name: CuDNN.Attribute, int64 value: Int64) throws { try set(name, int64s: [value]) }

    func set(_ name: CuDNN.Attribute, bool value: Bool) throws {
        var flag: UInt8 = value ? 1 : 0  // cudnnBackend's BOOLEAN is a C bool
        try set(name, .boolean, count: 1, &flag)
    }

    func set(_ name: CuDNN.Attribute, double value: Double) throws {
        var value = value
        try set(name, .double, count: 1, &value)
    }

    func set(_ name: CuDNN.Attribute, float value: Float) throws {
        var value = value
        try set(name, .float, count: 1, &value)
    }

    /// An enum-valued attribute (data type, pointwise mode, heuristics mode …): C enums are 32-bit ints.
    func set(_ name: CuDNN.Attribute, _ type: CuDNN.AttributeType, enumValue value: Int32) throws {
        var value = value
        try set(name, type, count: 1, &value)
    }

    func set(_ name: CuDNN.Attribute, descriptors: [CuDNNDescriptor]) throws {
        let raws: [cudnnBackendDescriptor_t?] = descriptors.map(\.raw)
        try raws.withUnsafeBytes { try set(name, .backendDescriptor, count: raws.count, $0.baseAddress!) }
    }

    func set(_ name: CuDNN.Attribute, descriptor: CuDNNDescriptor) throws { try set(name, descriptors: [descriptor]) }

    func set(_ name: CuDNN.Attribute, handle: cudnnHandle_t) throws {
        var handle: cudnnHandle_t? = handle
        try set(name, .handle, count: 1, &handle)
    }

    func set(_ name: CuDNN.Attribute, pointers: [UnsafeMutableRawPointer?]) throws {
        try pointers.withUnsafeBytes { try set(name, .voidPointer, count: pointers.count, $0.baseAddress!) }
    }

    func set(_ name: CuDNN.Attribute, pointer: UnsafeMutableRawPointer?) throws { try set(name, pointers: [pointer]) }

    func finalize() throws {
        try api.check(api.cudnnBackendFinalize(raw), "cudnnBackendFinalize(\(kind))")
    }

    func int64(_ name: CuDNN.Attribute) throws -> Int64 {
        var value: Int64 = 0, count: Int64 = 0
        try api.check(
            api.cudnnBackendGetAttribute(raw, name.rawValue, CuDNN.AttributeType.int64.rawValue, 1, &count, &value),
            "cudnnBackendGetAttribute(\(kind), \(name))")
        return value
    }

    /// How many elements a descriptor-array attribute holds (asked with a capacity of zero).
    func count(_ name: CuDNN.Attribute) throws -> Int {
        var count: Int64 = 0
        try api.check(
            api.cudnnBackendGetAttribute(raw, name.rawValue, CuDNN.AttributeType.backendDescriptor.rawValue, 0, &count, nil),
            "cudnnBackendGetAttribute(\(kind), \(name))")
        return Int(count)
    }

    /// Up to `capacity` descriptors of `kind` that cuDNN fills in (heuristics results): cuDNN writes into
    /// descriptors the caller created.
    func descriptors(_ name: CuDNN.Attribute, of kind: CuDNN.DescriptorType, capacity: Int) throws -> [CuDNNDescriptor] {
        guard capacity > 0 else { return [] }
        let made = try (0..<capacity).map { _ in try CuDNNDescriptor(kind, api: api) }
        var raws: [cudnnBackendDescriptor_t?] = made.map(\.raw)
        var count: Int64 = 0
        try api.check(
            api.cudnnBackendGetAttribute(
                raw, name.rawValue, CuDNN.AttributeType.backendDescriptor.rawValue, Int64(capacity), &count, &raws),
            "cudnnBackendGetAttribute(\(kind), \(name))")
        return Array(made.prefix(Int(count)))
    }
}
