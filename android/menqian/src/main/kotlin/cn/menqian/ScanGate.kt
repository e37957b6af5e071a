package cn.menqian

import java.util.concurrent.atomic.AtomicBoolean

/** What the scanner does with a decoded payload. */
sealed interface ScanOutcome<out T> {
    /** Accepted (a shop of this district, an enrollment that went through): the scanner is done. */
    data class Accepted<out T>(val value: T) : ScanOutcome<T>
    /** Refused (a payment code, a torn board, another district's code): say why and keep scanning. */
    data class Refused(val problem: Problem) : ScanOutcome<Nothing>
    /** Dropped: a payload is being checked, or this refused one is still in view. */
    data object Ignored : ScanOutcome<Nothing>
}

/**
 * Stands between the camera's decoder and the core ([check]: `scan` for a
 * signboard, `enrollLink` for the station's enrollment code). The camera
 * decodes many frames a second: the gate lets one payload through at a time,
 * keeps scanning after a refused code (so the officer can aim at the right
 * board), and does not report the same refused code again while it stays in
 * view for [quietMs]. The scanner stops only when a payload was accepted.
 */
class ScanGate<T>(
    private val quietMs: Long = 3_000,
    private val clock: () -> Long = System::currentTimeMillis,
    private val check: suspend (String) -> Answer<T>,
) {
    private val busy = AtomicBoolean(false)
    @Volatile private var opened = false
    @Volatile private var lastRefused: Pair<String, Long>? = null

    /** Checks [payload] with the core, unless the gate drops it. */
    suspend fun offer(payload: String): ScanOutcome<T> {
        if (opened) return ScanOutcome.Ignored
        val refused = lastRefused
        if (refused != null && refused.first == payload && clock() - refused.second < quietMs) {
            return ScanOutcome.Ignored
        }
        if (!busy.compareAndSet(false, true)) return ScanOutcome.Ignored
        try {
            return when (val answer = check(payload)) {
                is Answer.Ok -> {
                    opened = true
                    ScanOutcome.Accepted(answer.value)
                }
                is Answer.Err -> {
                    lastRefused = payload to clock()
                    ScanOutcome.Refused(answer.problem)
                }
            }
        } finally {
            busy.set(false)
        }
    }

    /** Scans again (the screen came back into view). */
    fun reset() {
        opened = false
        lastRefused = null
    }
}
