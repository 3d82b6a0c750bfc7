/// A contiguous, row-major n-dimensional array on some device.
///
/// `Tensor` is a handle: copies of it share the same memory, like a `torch.Tensor`.
/// All arithmetic goes through a ``Backend``; the tensor itself only knows its shape and element type.
///
/// ```swift
/// let cpu = CPUBackend()
/// let x = try cpu.tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
/// let y = try cpu.matmul(x, x, transposeB: true)   // [2, 2]
/// ```
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let dtype: DType
    public let storage: any TensorStorage

    /// Wraps `storage`, which must hold at least `shape.product` elements of `dtype`.
    public init(shape: [Int], dtype: DType, storage: any TensorStorage) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(storage.byteCount >= shape.reduce(1, *) * dtype.byteSize, "storage too small for \(shape)")
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var device: Device { storage.device }
    public var byteCount: Int { count * dtype.byteSize }

    /// The same memory seen with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count, newShape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.shapeMismatch(
                operation: "reshape", shapes: [shape, newShape], reason: "element counts differ")
        }
        return Tensor(shape: newShape, dtype: dtype, storage: storage)
    }

    /// Views the tensor as a matrix: all leading dimensions become rows.
    public func asMatrix(operation: String) throws -> (rows: Int, columns: Int) {
        guard let columns = shape.last else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [shape], reason: "expected at least 1 dimension")
        }
        return (columns == 0 ? 0 : count / columns, columns)
    }

    /// Whether two tensors share memory.
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    public var description: String { "Tensor(\(shape), \(dtype), \(device))" }
}
