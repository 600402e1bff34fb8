// swift-tools-version:6.0
import PackageDescription

// Kernels and the training loop are hot: build them without bounds checks and, on x86-64, with
// AVX2/FMA enabled so SIMD code uses 256-bit vectors (x86-64-v3: Haswell or newer, AMD Zen).
// Other architectures (aarch64: Graviton, Ampere, Apple Silicon) get the portable SIMD code as
// the compiler's default target compiles it. `#if arch` is evaluated on the machine that runs
// SwiftPM, which is right for native builds; for a cross-build from x86-64 (or a build for an
// x86-64 CPU older than Haswell) set EBFT_PORTABLE=1 to leave the x86 flags out.
#if arch(x86_64)
let x86_64_v3 = Context.environment["EBFT_PORTABLE"] == nil
#else
let x86_64_v3 = false
#endif
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
] + (x86_64_v3 ? [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-target-cpu", "haswell"])] : [])

let package = Package(
    name: "ebft-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ebft-dist", targets: ["ebft-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // zlib, to read .jsonl.gz training data without spawning gzip.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Distributed", dependencies: ["CMPI"], swiftSettings: fast),
        .target(name: "Model", dependencies: ["COpenBLAS"], swiftSettings: fast),
        .target(name: "Rollout", dependencies: ["Model", "CZlib"], swiftSettings: fast),
        .target(name: "Learner", dependencies: ["Model", "Rollout"], swiftSettings: fast),
        // Downstream evaluation: code sandbox, pass@k, BLEU, task corpora (HumanEval, de-en).
        .target(name: "Evaluation", dependencies: [], swiftSettings: fast),
        // The step loop where Rollout and Learner meet, the run configuration, metrics.
        .target(name: "Trainer",
                dependencies: ["Distributed", "Model", "Rollout", "Learner", "Evaluation",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: fast),
        // Plain C, built for the baseline CPU: before main, refuses a CPU that lacks what the
        // Swift targets were compiled for (AVX2/FMA on x86-64) with a message instead of SIGILL.
        .target(name: "CPUCheck", cSettings: x86_64_v3 ? [.define("EBFT_NEEDS_X86_64_V3")] : []),
        .executableTarget(
            name: "ebft-dist",
            dependencies: [
                "CPUCheck", "Distributed", "Model", "Rollout", "Learner", "Evaluation", "Trainer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "ModelTests", dependencies: ["Model"]),
        .testTarget(name: "RolloutTests", dependencies: ["Rollout", "Model"]),
        .testTarget(name: "LearnerTests", dependencies: ["Learner", "Rollout", "Model"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Distributed", "Model", "Rollout", "Learner"]),
        .testTarget(name: "EndToEndTests", dependencies: [],
                    swiftSettings: x86_64_v3 ? [.define("EBFT_X86_64_V3")] : []),
    ],
    swiftLanguageModes: [.v5]
)
