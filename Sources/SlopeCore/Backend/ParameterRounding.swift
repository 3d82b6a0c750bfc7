/// How an optimizer stores an updated bfloat16 parameter.
///
/// bfloat16 keeps 8 significant bits, so an update smaller than half a unit in the last place (0.2–0.4% of the
/// weight) is rounded away entirely: late in a cosine schedule most AdamW steps vanish and the loss stops falling
/// as it should. Stochastic rounding rounds up with probability equal to the dropped fraction, so the expected
/// stored weight is the exact one and small updates still move it on average; it needs no float32 copy of the
/// weights (llm.c trains bf16 weights the same way). float32 and float16 parameters are always rounded to nearest.
public enum ParameterRounding: Sendable, Equatable {
    /// Round to nearest, ties to even.
    case nearest
    /// Round at random, from 16 bits that depend on `seed` and the element's index alone (reproducible, and the
    /// same on every backend).
    case stochastic(seed: UInt32)
}

/// The random bits and the rounding behind ``ParameterRounding/stochastic(seed:)``; the CUDA optimizer kernels
/// compute the same numbers.
public enum StochasticRounding {
    /// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32").
    @inlinable
    public static func mix(_ x: UInt32) -> UInt32 {
        var x = x
        x ^= x >> 16
        x &*= 0x7FEB_352D
        x ^= x >> 15
        x &*= 0x846C_A68B
        x ^= x >> 16
        return x
    }

    /// The random bits of element `index` under `seed`.
    @inlinable
    public static func bits(seed: UInt32, index: Int) -> UInt32 {
        let i = UInt64(bitPattern: Int64(index))
        return mix(UInt32(truncatingIfNeeded: i) ^ mix(seed ^ mix(UInt32(truncatingIfNeeded: i >> 32))))
    }

    /// `value` rounded to a bfloat16 (returned as the Float it widens to) down or up at random: adding 16 random
    /// bits below the kept ones and truncating rounds the magnitude up with probability equal to the dropped
    /// fraction. NaN and infinities round to nearest.
    @inlinable
    public static func bfloat16(_ value: Float, bits random: UInt32) -> Float {
        guard value.isFinite else { return float(fromBFloat16: bfloat16Bits(from: value)) }
        return Float(bitPattern: (value.bitPattern &+ (random & 0xFFFF)) & 0xFFFF_0000)
    }

    /// A seed for one tensor's update at one step: distinct per run seed, step and tensor.
    public static func seed(run: UInt64, step: Int, tensor: Int) -> UInt32 {
        let low = mix(UInt32(truncatingIfNeeded: run) ^ mix(UInt32(truncatingIfNeeded: run >> 32) &+ 0x9E37_79B9))
        return mix(low ^ mix(UInt32(truncatingIfNeeded: step) &* 0x85EB_CA6B ^ mix(UInt32(truncatingIfNeeded: tensor) &+ 0xC2B2_AE35)))
    }
}
