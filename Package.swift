// swift-tools-version:6.0
import PackageDescription

// Kernels and the training loop are hot: build them without bounds checks and with
// AVX2/FMA so SIMD code compiles to vector FMA instructions (this project targets x86-64-v3).
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
    .unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-target-cpu", "haswell"]),
]

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
        .target(name: "Distributed", dependencies: ["CMPI"], swiftSettings: fast),
        .target(name: "Model", dependencies: ["COpenBLAS"], swiftSettings: fast),
        .target(name: "Rollout", dependencies: ["Model"], swiftSettings: fast),
        .target(name: "Learner", dependencies: ["Model", "Rollout"], swiftSettings: fast),
        // Downstream evaluation: code sandbox, pass@k, BLEU, task corpora (HumanEval, de-en).
        .target(name: "Evaluation", dependencies: [], swiftSettings: fast),
        // The step loop where Rollout and Learner meet, the run configuration, metrics.
        .target(name: "Trainer",
                dependencies: ["Distributed", "Model", "Rollout", "Learner", "Evaluation",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: fast),
        .executableTarget(
            name: "ebft-dist",
            dependencies: [
                "Distributed", "Model", "Rollout", "Learner", "Evaluation", "Trainer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "ModelTests", dependencies: ["Model"]),
        .testTarget(name: "RolloutTests", dependencies: ["Rollout", "Model"]),
        .testTarget(name: "LearnerTests", dependencies: ["Learner", "Rollout", "Model"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Distributed", "Model", "Rollout", "Learner"]),
        .testTarget(name: "EndToEndTests", dependencies: []),
    ],
    swiftLanguageModes: [.v5]
)
