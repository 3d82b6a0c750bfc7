/// Refuses work whose memory could never fit the device, before anything is allocated: a model, batch or shape
/// sized by a mistyped flag or a damaged file gets an error with the bytes it needs and the bytes the device has,
/// instead of an allocation failure deep inside (or, on the host, the kernel's out-of-memory killer) later.
///
///     try MemoryBudget.require(CheckedSize.product([parameters, dtype.byteSize]), for: "the model's weights", on: backend)
public enum MemoryBudget {
    /// Throws ``TensorError/exceedsMemory(what:neededBytes:capacityBytes:device:)`` when `bytes` (nil: an
    /// overflowed count) is more than `backend`'s device has in all. Devices that do not say pass.
    public static func require(_ bytes: Int?, for what: String, on backend: any Backend) throws {
        guard let capacity = backend.memoryCapacity else { return }
        guard let bytes, bytes <= capacity else {
            throw TensorError.exceedsMemory(what: what, neededBytes: bytes, capacityBytes: capacity, device: backend.device)
        }
    }
}
