// swift-tools-version:5.9
// The Swift package of ferrolm's bindings (Linux, SwiftPM). Only this manifest, the tests and
// the bench are committed: build.sh stages a complete copy of the package (under build/package
// and inside its Swift chroot) and adds what uniffi generates from the built library:
//
//   Sources/ferrolmFFI/ferrolmFFI.h + module.modulemap   the C interface (a system-library target)
//   Sources/Ferrolm/Ferrolm.swift                        the Swift API over it (library `Ferrolm`)
//   lib/libferrolm_ffi.so                                the Rust library (crates/ferrolm-ffi)
//
// The library is found in `lib/` beside this manifest, or in $FERROLM_LIB_DIR, and its path is
// baked in as an rpath, so tests and executables run without LD_LIBRARY_PATH. For Apple
// platforms the system-library target becomes an XCFramework binary target: see README.md.
import Foundation
import PackageDescription

let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let libDir = ProcessInfo.processInfo.environment["FERROLM_LIB_DIR"] ?? "\(packageDir)/lib"

let package = Package(
    name: "Ferrolm",
    products: [
        .library(name: "Ferrolm", targets: ["Ferrolm"]),
    ],
    targets: [
        // The generated C header of the FFI (uniffi's `ferrolmFFI.h`) and its module map.
        .systemLibrary(name: "ferrolmFFI", path: "Sources/ferrolmFFI"),
        // The generated Swift API: `import Ferrolm`.
        .target(
            name: "Ferrolm",
            dependencies: ["ferrolmFFI"],
            path: "Sources/Ferrolm",
            linkerSettings: [
                .linkedLibrary("ferrolm_ffi"),
                .unsafeFlags(["-L\(libDir)", "-Xlinker", "-rpath", "-Xlinker", libDir]),
            ]
        ),
        // The Swift half of the FFI overhead measurement (build.sh --bench, built with -c release).
        .executableTarget(name: "FerrolmBench", dependencies: ["Ferrolm"], path: "Sources/FerrolmBench"),
        .testTarget(name: "FerrolmTests", dependencies: ["Ferrolm"], path: "Tests/FerrolmTests"),
    ]
)
