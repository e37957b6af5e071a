// swift-tools-version:5.9
// MenqianKit: the generated UniFFI Swift (MenqianCore) over the Rust library
// (MenqianCoreFFI.xcframework, built by ios/build-xcframework.sh), and an
// idiomatic layer with async/await and AsyncStream (MenqianKit).
import PackageDescription

let package = Package(
    name: "MenqianKit",
    platforms: [.iOS(.v17)],
    products: [
        .library(name: "MenqianKit", targets: ["MenqianKit"]),
    ],
    targets: [
        .binaryTarget(
            name: "MenqianCoreFFI",
            path: "../build/MenqianCoreFFI.xcframework"
        ),
        .target(
            name: "MenqianCore",
            dependencies: ["MenqianCoreFFI"],
            path: "Sources/MenqianCore"
        ),
        .target(
            name: "MenqianKit",
            dependencies: ["MenqianCore"],
            path: "Sources/MenqianKit"
        ),
    ]
)
