// The Kotlin half of the FFI overhead measurement: the same loop as
// crates/ferrolm-ffi/examples/megolm_loop.rs (N Megolm encrypt + decrypt, 160-byte plaintext,
// best of R runs after a warm-up), through the generated bindings and JNA.
// It also times two single calls, to show what one crossing costs on its own: a method that
// returns a number (no buffers) and one that takes bytes and returns a string.
// Usage: java -cp … ferrolm.bench.BenchKt [N] [R]   (prints "kotlin ms=…" and "kotlin-call …")
package ferrolm.bench

import ferrolm.GroupSession
import ferrolm.InboundGroupSession
import ferrolm.SessionVersion
import ferrolm.base64Encode

private val plaintext = ByteArray(160) { ('a'.code + it % 26).toByte() }

private fun loop(n: Int): Long {
    val start = System.nanoTime()
    GroupSession(SessionVersion.V1).use { outbound ->
        InboundGroupSession(outbound.sessionKey(), SessionVersion.V1).use { inbound ->
            for (i in 0 until n) {
                val decrypted = inbound.decrypt(outbound.encrypt(plaintext))
                check(decrypted.messageIndex == i.toUInt())
            }
        }
    }
    return System.nanoTime() - start
}

fun main(args: Array<String>) {
    val n = args.getOrNull(0)?.toInt() ?: 10_000
    val reps = args.getOrNull(1)?.toInt() ?: 5
    // Warm up the JIT (and JNA's method lookups) before timing, as the Rust side warms up too.
    repeat(3) { loop(1_000) }
    val best = (0 until reps).minOf { loop(n) }
    println("kotlin ms=%.1f".format(best / 1e6))

    // Nanoseconds per call, best of R batches of 100,000 calls.
    fun perCall(call: () -> Unit): Double {
        repeat(20_000) { call() }
        return (0 until reps).minOf {
            val start = System.nanoTime()
            repeat(100_000) { call() }
            System.nanoTime() - start
        } / 100_000.0
    }
    GroupSession(SessionVersion.V1).use { session ->
        val index = perCall { session.messageIndex() }
        val bytes = perCall { base64Encode(plaintext) }
        println("kotlin-call ns: messageIndex()=%.0f base64Encode(160 B)=%.0f".format(index, bytes))
    }
}
