/// A fast 64-bit hash of byte strings, written into slope's safetensors files so that data damaged after
/// saving (a bad disk, a faulty copy, a writer bug) is reported on load instead of training on garbage.
/// Four independent multiply–rotate lanes over 8-byte words keep it at memory speed; not cryptographic.
struct ContentHash {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private(set) var value: UInt64 = 0x2545_F491_4F6C_DD1D

    /// Folds `bytes` (and its length, so moved boundaries change the result) into the hash.
    mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        var lanes = (Self.prime1, Self.prime2, Self.prime1 ^ Self.prime2, value)
        let words = bytes.count / 8
        func word(_ index: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) }
        var index = 0
        while index + 4 <= words {
            lanes.0 = Self.round(lanes.0, word(index))
            lanes.1 = Self.round(lanes.1, word(index + 1))
            lanes.2 = Self.round(lanes.2, word(index + 2))
            lanes.3 = Self.round(lanes.3, word(index + 3))
            index += 4
        }
        var hash = Self.rotate(lanes.0, 1) &+ Self.rotate(lanes.1, 7) &+ Self.rotate(lanes.2, 12) &+ Self.rotate(lanes.3, 18)
        while index < words {
            hash = Self.round(hash, word(index))
            index += 1
        }
        for offset in (words * 8)..<bytes.count { hash = (hash ^ UInt64(bytes[offset])) &* Self.prime1 }
        hash ^= UInt64(bytes.count)
        hash = (hash ^ (hash >> 33)) &* Self.prime2
        value = hash ^ (hash >> 29)
    }

    mutating func combine(_ bytes: some Collection<UInt8>) {
        if bytes.withContiguousStorageIfAvailable({ combine(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { combine($0) }
        }
    }

    var hexadecimal: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    private static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
        rotate(accumulator &+ input &* prime2, 31) &* prime1
    }

    private static func rotate(_ x: UInt64, _ bits: UInt64) -> UInt64 { (x << bits) | (x >> (64 - bits)) }
}
