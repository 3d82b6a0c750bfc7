/// Conversions between `Float` and the 16-bit storage formats, both rounding to nearest, ties to even.

/// bfloat16 is the upper half of an IEEE float32: 1 sign, 8 exponent, 7 mantissa bits.
@inlinable
public func bfloat16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN {
        // Keep the sign and force a quiet-NaN mantissa bit so truncation cannot turn NaN into infinity.
        return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
    }
    // Round to nearest even: add 0x7FFF plus the lowest kept bit, then truncate.
    let roundingBias = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
}

@inlinable
public func float(fromBFloat16 bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits (subnormals, infinities and NaN handled).
@inlinable
public func float16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    var mantissa = bits & 0x7F_FFFF
    if exponent == 0xFF {  // infinity or NaN
        return sign | 0x7C00 | (mantissa != 0 ? 0x0200 : 0)
    }
    let halfExponent = exponent - 127 + 15
    if halfExponent >= 0x1F {  // overflow rounds to infinity
        return sign | 0x7C00
    }
    if halfExponent <= 0 {  // subnormal half (or zero)
        if halfExponent < -10 { return sign }  // below half the smallest subnormal
        mantissa |= 0x80_0000  // implicit leading one
        let shift = UInt32(14 - halfExponent)
        let halfMantissa = mantissa >> shift
        let remainder = mantissa & ((1 << shift) - 1)
        let halfway = UInt32(1) << (shift - 1)
        var result = UInt32(halfMantissa)
        if remainder > halfway || (remainder == halfway && (halfMantissa & 1) == 1) { result += 1 }
        return sign | UInt16(truncatingIfNeeded: result)
    }
    var result = UInt32(halfExponent) << 10 | (mantissa >> 13)
    let remainder = mantissa & 0x1FFF
    if remainder > 0x1000 || (remainder == 0x1000 && (result & 1) == 1) {
        result += 1  // a carry into the exponent is correct, including rounding up to infinity
    }
    return sign | UInt16(truncatingIfNeeded: result)
}

@inlinable
public func float(fromFloat16 bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    if exponent == 0 {
        // Subnormal: mantissa · 2^-24, exact in float32.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}
