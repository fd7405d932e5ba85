// Every object may be used from any thread: the Rust side keeps its state behind a mutex.
import Foundation
import XCTest
import Ferrolm

final class ThreadTests: XCTestCase {
    /// Runs `body(t)` on `count` new threads at once and waits for all of them.
    private func onThreads(_ count: Int, _ body: @escaping (Int) -> Void) {
        let group = DispatchGroup()
        let threads = (0..<count).map { t in
            group.enter()
            return Thread {
                body(t)
                group.leave()
            }
        }
        threads.forEach { $0.start() }
        group.wait()
    }

    func testOneGroupSessionSharedByFourThreads() throws {
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        let lock = NSLock()
        var messages: [(thread: Int, message: String)] = []
        onThreads(4) { t in
            for _ in 0..<50 {
                let message = outbound.encrypt(plaintext: bytes("t\(t)"))
                lock.lock()
                messages.append((t, message))
                lock.unlock()
            }
        }
        XCTAssertEqual(messages.count, 200)
        XCTAssertEqual(outbound.messageIndex(), 200)
        var indices = Set<UInt32>()
        for (t, message) in messages {
            let decrypted = try inbound.decrypt(message: message)
            XCTAssertEqual(text(decrypted.plaintext), "t\(t)")
            indices.insert(decrypted.messageIndex)
        }
        XCTAssertEqual(indices, Set(0..<200), "every index once")
    }

    func testOneInboundGroupSessionDecryptingOnFourThreads() throws {
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        let messages = (0..<200).map { outbound.encrypt(plaintext: bytes("m\($0)")) }
        let lock = NSLock()
        var results: [Int: String] = [:]
        var failures: [String] = []
        onThreads(4) { t in
            for i in stride(from: t, to: messages.count, by: 4) {
                do {
                    let decrypted = try inbound.decrypt(message: messages[i])
                    lock.lock()
                    results[Int(decrypted.messageIndex)] = text(decrypted.plaintext)
                    lock.unlock()
                } catch {
                    lock.lock()
                    failures.append("message \(i): \(error)")
                    lock.unlock()
                }
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(results.count, 200)
        XCTAssertTrue((0..<200).allSatisfy { results[$0] == "m\($0)" }, "each index decrypts to its own plaintext")
    }
}
