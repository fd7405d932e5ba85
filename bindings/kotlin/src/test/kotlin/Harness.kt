// A JUnit-free test harness: named checks, counted, with a closing line the CI reads
// ("kotlin: N passed, M failed"). A failing check prints its stack trace and the run goes on.
package ferrolm.test

class Harness {
    var passed = 0
        private set
    var failed = 0
        private set

    fun check(name: String, body: () -> Unit) {
        val start = System.nanoTime()
        try {
            body()
            passed++
            println("ok   %-62s %6d ms".format(name, (System.nanoTime() - start) / 1_000_000))
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: $e")
            e.printStackTrace(System.out)
        }
    }
}

class CheckFailed(message: String) : AssertionError(message)

fun require(condition: Boolean, message: () -> String) {
    if (!condition) throw CheckFailed(message())
}

fun <T> assertEquals(expected: T, actual: T, what: String = "value") {
    if (expected != actual) throw CheckFailed("$what: expected <$expected>, got <$actual>")
}

fun assertBytes(expected: ByteArray, actual: ByteArray, what: String = "bytes") {
    if (!expected.contentEquals(actual)) {
        throw CheckFailed("$what: expected <${String(expected)}>, got <${String(actual)}>")
    }
}

/** Runs [body] and returns the exception it throws, which must be an [E]. */
inline fun <reified E : Throwable> assertThrows(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw CheckFailed("expected ${E::class.qualifiedName}, got ${e::class.qualifiedName}: $e")
    }
    throw CheckFailed("expected ${E::class.qualifiedName}, nothing was thrown")
}
