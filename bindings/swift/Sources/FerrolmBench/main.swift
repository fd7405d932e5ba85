// The Swift half of the FFI overhead measurement: the same loop as
// crates/ferrolm-ffi/examples/megolm_loop.rs (N Megolm encrypt + decrypt, 160-byte plaintext,
// best of R runs after a warm-up), through the generated bindings, built with -c release.
// It also times two single calls, to show what one crossing costs on its own: a method that
// returns a number (no buffers) and one that takes bytes and returns a string.
// Usage: FerrolmBench [N] [R]   (prints "swift ms=…" and "swift-call ns: …")
import Foundation
import Ferrolm

let arguments = CommandLine.arguments.dropFirst()
let n = arguments.first.flatMap { Int($0) } ?? 10_000
let reps = arguments.dropFirst().first.flatMap { Int($0) } ?? 5
let plaintext = Data((0..<160).map { UInt8(ascii: "a") + UInt8($0 % 26) })

func nanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

func loop(_ n: Int) throws -> UInt64 {
    let start = nanoseconds()
    do {
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        for i in 0..<n {
            let decrypted = try inbound.decrypt(message: outbound.encrypt(plaintext: plaintext))
            precondition(decrypted.messageIndex == UInt32(i))
        }
    }
    return nanoseconds() - start
}

// Warm up (caches, the allocator, uniffi's one-time checks) before timing, as the Rust side does.
for _ in 0..<3 {
    _ = try loop(1_000)
}
var best = UInt64.max
for _ in 0..<reps {
    best = min(best, try loop(n))
}
print(String(format: "swift ms=%.1f", Double(best) / 1e6))

/// Nanoseconds per call, best of R batches of 100,000 calls.
func perCall(_ call: () -> Int) -> Double {
    var sink = 0
    for _ in 0..<20_000 {
        sink &+= call()
    }
    var best = UInt64.max
    for _ in 0..<reps {
        let start = nanoseconds()
        for _ in 0..<100_000 {
            sink &+= call()
        }
        best = min(best, nanoseconds() - start)
    }
    if sink == 42 {
        print("")  // keeps the calls' results alive
    }
    return Double(best) / 100_000
}

let session = GroupSession(version: .v1)
let index = perCall { Int(session.messageIndex()) }
let encode = perCall { base64Encode(bytes: plaintext).utf8.count }
print(String(format: "swift-call ns: messageIndex()=%.0f base64Encode(160 B)=%.0f", index, encode))
