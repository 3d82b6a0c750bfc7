/// A shared library slope opens at run time, the file names it may have, and what provides it.
public struct CUDALibrary: Sendable, Hashable, CustomStringConvertible {
    /// Human name ("cuSPARSELt").
    public let name: String
    /// File names to try, newest ABI first.
    public let fileNames: [String]
    /// Sub-folders of `site-packages/nvidia/` where pip wheels put it (older wheels: one per library).
    public let pipFolders: [String]
    /// What to install when it is missing.
    public let provider: String

    public init(name: String, fileNames: [String], pipFolders: [String], provider: String) {
        self.name = name
        self.fileNames = fileNames
        self.pipFolders = pipFolders
        self.provider = provider
    }

    public var description: String { name }

    public static let driver = CUDALibrary(
        name: "CUDA driver", fileNames: ["libcuda.so.1", "libcuda.so"], pipFolders: [],
        provider: "the NVIDIA GPU driver (e.g. the nvidia-driver package); slope needs a machine with an NVIDIA GPU")
    public static let nvrtc = CUDALibrary(
        name: "NVRTC", fileNames: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], pipFolders: ["cuda_nvrtc"],
        provider: "the CUDA toolkit's NVRTC (cuda-nvrtc) or pip install nvidia-cuda-nvrtc-cu13")
    public static let cublasLt = CUDALibrary(
        name: "cuBLASLt", fileNames: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], pipFolders: ["cublas"],
        provider: "the CUDA toolkit's cuBLAS (libcublas) or pip install nvidia-cublas-cu13")
    public static let cusparseLt = CUDALibrary(
        name: "cuSPARSELt", fileNames: ["libcusparseLt.so.0", "libcusparseLt.so"], pipFolders: ["cusparselt"],
        provider: "pip install nvidia-cusparselt-cu13 (or NVIDIA's libcusparselt0 package)")

    /// Optional: its fused attention is the fastest attention route where it loads (our kernels otherwise).
    public static let cudnn = CUDALibrary(
        name: "cuDNN", fileNames: ["libcudnn.so.9", "libcudnn.so"], pipFolders: ["cudnn"],
        provider: "pip install nvidia-cudnn-cu13 (or NVIDIA's libcudnn9 package)")

    /// Only data-parallel runs (WORLD_SIZE > 1) need it.
    public static let nccl = CUDALibrary(
        name: "NCCL", fileNames: ["libnccl.so.2", "libnccl.so"], pipFolders: ["nccl"],
        provider: "pip install nvidia-nccl-cu13 (or NVIDIA's libnccl2 package)")

    public static let all: [CUDALibrary] = [.driver, .nvrtc, .cublasLt, .cusparseLt]
}
