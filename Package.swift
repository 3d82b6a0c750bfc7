// swift-tools-version:6.1
import PackageDescription

// Targets are listed in dependency order: C kernels → core tensors and backends → the SLoPe library → CLI.
let package = Package(
    name: "slope",
    products: [
        .library(name: "SLoPe", targets: ["SLoPe"]),
        .library(name: "SlopeCore", targets: ["SlopeCore"]),
        .library(name: "SlopeData", targets: ["SlopeData"]),
        .executable(name: "slope", targets: ["SlopeCLI"]),
        .executable(name: "slope-fuzz", targets: ["SlopeFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // HTTP for `slope serve`; without its default traits (full Foundation, swift-configuration), which it does not need.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        // SIMD micro-kernels (AVX-512 / AVX2 with run-time dispatch and a portable fallback).
        .target(name: "CSlopeCPU"),
        // Tensors, dtypes, the Backend protocol and the CPU backend.
        .target(
            name: "SlopeCore",
            dependencies: [
                "CSlopeCPU",
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        // Hand-written CUDA declarations: no NVIDIA headers are needed to build.
        .target(name: "CCUDA"),
        // The CUDA backend, loading libcuda, NVRTC, cuBLASLt and cuSPARSELt at run time.
        .target(name: "SlopeCUDA", dependencies: ["SlopeCore", "CCUDA", .product(name: "RealModule", package: "swift-numerics")]),
        // Tokenizers, chat templates, the embedded corpus, token shards and loaders (SlopeCore only for its file writer; a heap
        // for BPE merges; ordered dictionaries for templates' values).
        .target(
            name: "SlopeData",
            dependencies: [
                "SlopeCore", .product(name: "RealModule", package: "swift-numerics"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // SLoPe itself: N:M sparsity, layers, optimizers, adapters, models, training and checkpoints.
        .target(name: "SLoPe", dependencies: ["SlopeCore", "SlopeData", .product(name: "RealModule", package: "swift-numerics")]),
        // `slope serve`: an OpenAI-compatible HTTP server with continuous batching over SLoPe's generation.
        .target(
            name: "SlopeServer",
            dependencies: ["SLoPe", "SlopeData", .product(name: "Hummingbird", package: "hummingbird")]
        ),
        .executableTarget(
            name: "SlopeCLI",
            dependencies: [
                "SLoPe",
                "SlopeCUDA",
                "SlopeServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        // Fuzz targets for every parser of untrusted input (fuzz/run.sh builds them with libFuzzer).
        .target(name: "CSlopeFuzz"),
        .executableTarget(name: "SlopeFuzz", dependencies: ["SLoPe", "SlopeData", "CSlopeFuzz"]),
        // Helpers shared by the test targets: random tensors, assertClose, finite differences.
        .target(name: "SlopeTestSupport", dependencies: ["SlopeCore"], path: "Tests/SlopeTestSupport"),
        .testTarget(name: "SlopeCoreTests", dependencies: ["SlopeCore", "SlopeTestSupport"]),
        .testTarget(name: "SLoPeTests", dependencies: ["SLoPe", "SlopeData", "SlopeTestSupport"]),
        .testTarget(name: "SlopeDataTests", dependencies: ["SlopeData", "SlopeCore"]),
        .testTarget(name: "SlopeCUDATests", dependencies: ["SlopeCUDA", "CCUDA", "SlopeTestSupport"]),
        .testTarget(name: "SlopeServerTests", dependencies: ["SlopeServer", "SLoPe", "SlopeData"]),
        // Runs the built `slope` binary as a user would (depending on it makes the test build produce it).
        .testTarget(
            name: "SlopeCLITests",
            dependencies: ["SlopeCLI", "SLoPe", "SlopeData", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    ]
)
