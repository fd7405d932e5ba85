// Runs every Kotlin check of the ferrolm bindings and exits non-zero if any failed.
package ferrolm.test

import kotlin.system.exitProcess

fun main() {
    val harness = Harness()
    Scenario(harness).run()
    errorChecks(harness)
    moduleChecks(harness)
    edgeChecks(harness)
    println("kotlin: ${harness.passed} passed, ${harness.failed} failed")
    exitProcess(if (harness.failed == 0) 0 else 1)
}
