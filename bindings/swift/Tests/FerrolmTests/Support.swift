// Helpers shared by the tests: typed-error assertions, a seeded generator, byte helpers.
import Foundation
import XCTest

/// Runs `body`, which must throw an `E`, and returns that error. Anything else (no error, or
/// an error of another type, such as uniffi's internal error for a Rust panic) fails the test
/// and returns nil. `matching`, if given, must hold for the error: use it to name the case when
/// its fields are not known in advance, e.g. `{ if case .Malformed = $0 { true } else { false } }`.
@discardableResult
func assertThrows<E: Error, T>(
    _ type: E.Type,
    _ body: @autoclosure () throws -> T,
    file: StaticString = #filePath,
    line: UInt = #line,
    matching: ((E) -> Bool)? = nil
) -> E? {
    let error: E
    do {
        let value = try body()
        XCTFail("expected \(E.self) to be thrown, got the value \(value)", file: file, line: line)
        return nil
    } catch let typed as E {
        error = typed
    } catch {
        XCTFail("expected \(E.self), got \(Swift.type(of: error)): \(error)", file: file, line: line)
        return nil
    }
    if let matching, !matching(error) {
        XCTFail("\(E.self): unexpected case \(String(reflecting: error))", file: file, line: line)
        return nil
    }
    return error
}

/// Asserts that `body` throws exactly `expected`: the same case with the same fields.
func assertThrows<E: Error & Equatable, T>(
    _ expected: E,
    _ body: @autoclosure () throws -> T,
    file: StaticString = #filePath,
    line: UInt = #line
) {
    if let error = assertThrows(E.self, try body(), file: file, line: line) {
        XCTAssertEqual(error, expected, file: file, line: line)
    }
}

/// SplitMix64: a small seeded generator, so that shuffles and junk inputs are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Data {
    /// `count` bytes from `generator`.
    static func random<G: RandomNumberGenerator>(count: Int, using generator: inout G) -> Data {
        Data((0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// `count` bytes from the system's secure generator.
    static func secureRandom(count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        return random(count: count, using: &generator)
    }

    /// A copy with bit 0 of the byte at `offset` (from the start) flipped.
    func flippingBit(at offset: Int) -> Data {
        var copy = Data(self)
        copy[copy.startIndex + offset] ^= 1
        return copy
    }
}

/// The UTF-8 bytes of a string.
func bytes(_ text: String) -> Data {
    Data(text.utf8)
}

/// A UTF-8 string from bytes.
func text(_ data: Data) -> String {
    String(decoding: data, as: UTF8.self)
}
