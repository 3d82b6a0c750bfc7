import SlopeCore

/// CUDA C sources of slope's kernels, one family per file in `Sources/`, compiled by NVRTC per element type.
enum KernelSources {}

/// A group of kernels compiled together into one module.
enum KernelFamily: String, CaseIterable, Sendable {
    case elementwise, reductions, normalization, loss, optimizer, layout, sparsity, bytes, compressedLayout, attention
    case attentionTensorCore, decoding, skinnySparse, skinnySparseTensorCore, timing

    var source: String {
        switch self {
        case .elementwise: return KernelSources.elementwise
        case .reductions: return KernelSources.reductions
        case .normalization: return KernelSources.normalization
        case .loss: return KernelSources.loss
        case .optimizer: return KernelSources.optimizer
        case .layout: return KernelSources.layout
        case .sparsity: return KernelSources.sparsity
        case .bytes: return KernelSources.bytes
        case .compressedLayout: return KernelSources.compressedLayout
        case .attention: return KernelSources.attention
        case .attentionTensorCore: return KernelSources.attentionTensorCore
        case .decoding: return KernelSources.decoding
        case .skinnySparse: return KernelSources.skinnySparse
        case .skinnySparseTensorCore: return KernelSources.skinnySparseTensorCore
        case .timing: return KernelSources.timing
        }
    }

    /// The C type the kernels' `T` stands for.
    static func elementType(_ dtype: DType, operation: String) throws -> String {
        switch dtype {
        case .float32: return "float"
        case .bfloat16: return "bf16"
        case .float16: return "f16"
        case .float64, .int32, .uint8:
            // The GPU computes in float32; float64 is for CPU gradient checks.
            throw TensorError.unsupportedDType(operation: "\(operation) on CUDA", dtype: dtype)
        }
    }

    /// The complete translation unit for `dtype`: shared prelude, the element type, then the family.
    func translationUnit(for dtype: DType) throws -> String {
        let type = try Self.elementType(dtype, operation: rawValue)
        // The macro lets a family compile parts only for some element types (tensor-core code for bf16/f16).
        return KernelSources.prelude + "\n#define ELEMENT_\(type.uppercased())\ntypedef \(type) T;\n" + source
    }
}
