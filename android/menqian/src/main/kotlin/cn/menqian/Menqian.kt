package cn.menqian

import cn.menqian.core.CancelHandle
import cn.menqian.core.CaseReport
import cn.menqian.core.CaseRow
import cn.menqian.core.CaseMoveInput
import cn.menqian.core.CaseState
import cn.menqian.core.DayPlanView
import cn.menqian.core.RectificationView
import cn.menqian.core.StandingView
import cn.menqian.core.DeviceClock
import cn.menqian.core.Enrollment
import cn.menqian.core.Fix
import cn.menqian.core.ImportSummary
import cn.menqian.core.InspectionView
import cn.menqian.core.MenqianException
import cn.menqian.core.MenqianStore
import cn.menqian.core.Outcome
import cn.menqian.core.PatrolSummary
import cn.menqian.core.Phase
import cn.menqian.core.PhotoView
import cn.menqian.core.ProgressListener
import cn.menqian.core.ShopRow
import cn.menqian.core.ShopView
import cn.menqian.core.SubmitResult
import cn.menqian.core.SyncSummary
import cn.menqian.core.TimeVerdict
import cn.menqian.core.TrackFix
import cn.menqian.core.PatrolStart
import cn.menqian.core.problemText
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.flowOn
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** What a call gave: a value, or a [Problem] the screen can show or act on. */
sealed interface Answer<out T> {
    data class Ok<out T>(val value: T) : Answer<T>
    data class Err(val problem: Problem) : Answer<Nothing>

    /** The value, or null on a problem. */
    fun valueOrNull(): T? = (this as? Ok)?.value
}

/**
 * The core's errors, as cases a screen handles. [text] is what the screen
 * shows, in Chinese; it comes from the core (`problemText`), the one home of
 * these texts for both apps.
 */
sealed class Problem(val text: String) {
    class Invalid(val field: String, text: String) : Problem(text)
    class NotFound(text: String) : Problem(text)
    class BadQrCode(text: String) : Problem(text)
    class Incomplete(val codes: List<String>, text: String) : Problem(text)
    class PhotoRequired(val code: String, text: String) : Problem(text)
    class NotAllowed(text: String) : Problem(text)
    class Offline(text: String) : Problem(text)
    /** The station's certificate is not the one this phone trusts: nothing was sent. */
    class Untrusted(text: String) : Problem(text)
    class Unauthorized(text: String) : Problem(text)
    class Rejected(val reason: String, text: String) : Problem(text)
    class ServerError(text: String) : Problem(text)
    class Cancelled(text: String) : Problem(text)
    class Storage(text: String) : Problem(text)
    class BadPhoto(text: String) : Problem(text)

    override fun toString(): String = "${this::class.simpleName}($text)"

    companion object {
        fun of(e: MenqianException): Problem {
            val text = problemText(e)
            return when (e) {
                is MenqianException.InvalidInput -> Invalid(e.field, text)
                is MenqianException.NotFound -> NotFound(text)
                is MenqianException.BadQrCode -> BadQrCode(text)
                is MenqianException.IncompleteInspection -> Incomplete(e.codes, text)
                is MenqianException.PhotoRequired -> PhotoRequired(e.code, text)
                is MenqianException.NotAllowed -> NotAllowed(text)
                is MenqianException.Offline -> Offline(text)
                is MenqianException.Untrusted -> Untrusted(text)
                is MenqianException.Unauthorized -> Unauthorized(text)
                is MenqianException.Rejected -> Rejected(e.reason, text)
                is MenqianException.Server -> ServerError(text)
                is MenqianException.Cancelled -> Cancelled(text)
                is MenqianException.Storage -> Storage(text)
                is MenqianException.BadPhoto -> BadPhoto(text)
            }
        }
    }
}

/** Where a sync stands, as a sync screen shows it. */
sealed interface SyncState {
    data class Running(val phase: Phase, val done: Long, val total: Long) : SyncState
    data class Done(val summary: SyncSummary) : SyncState
    data class Failed(val problem: Problem) : SyncState
}

/**
 * The app's way into the core: every call runs on [io] and answers with an
 * [Answer]; sync is a [Flow] of [SyncState] that cancels the sync when its
 * collector goes away. Screens and view models use this, never the generated
 * bindings directly.
 */
class Menqian(
    val store: MenqianStore,
    private val io: CoroutineDispatcher = Dispatchers.IO,
) : AutoCloseable {

    companion object {
        suspend fun open(
            path: String,
            qrHosts: List<String>,
            io: CoroutineDispatcher = Dispatchers.IO,
        ): Answer<Menqian> = withContext(io) {
            try {
                Answer.Ok(Menqian(MenqianStore.open(path, qrHosts), io))
            } catch (e: MenqianException) {
                Answer.Err(Problem.of(e))
            }
        }
    }

    private suspend fun <T> call(block: MenqianStore.() -> T): Answer<T> = withContext(io) {
        try {
            Answer.Ok(store.block())
        } catch (e: MenqianException) {
            Answer.Err(Problem.of(e))
        }
    }

    suspend fun importRegistry(json: String): Answer<ImportSummary> =
        call { importRegistryJson(json, null) }

    suspend fun importTemplates(json: String): Answer<UInt> = call { importTemplatesJson(json) }
    suspend fun importCategories(json: String): Answer<Unit> = call { importCategoriesJson(json) }

    suspend fun scan(payload: String): Answer<ShopView> = call { scan(payload) }
    suspend fun shopByCode(code: String): Answer<ShopView> = call { shopByCode(code) }
    suspend fun shop(id: String): Answer<ShopView> = call { shop(id) }
    suspend fun search(text: String, limit: Int = 50): Answer<List<ShopRow>> =
        call { searchShops(text, limit.toUInt()) }
    suspend fun shopsOn(street: String, lane: String? = null): Answer<List<ShopRow>> =
        call { shopsOn(street, lane) }

    suspend fun startInspection(
        shopId: String,
        templateId: String,
        inspector: String,
        atMs: Long,
        fix: Fix?,
    ): Answer<String> = call { startInspection(shopId, templateId, inspector, atMs, fix) }

    suspend fun inspection(id: String): Answer<InspectionView> = call { inspection(id) }

    suspend fun record(
        inspectionId: String,
        code: String,
        outcome: Outcome,
        note: String? = null,
        photos: List<String> = emptyList(),
    ): Answer<Unit> = call { recordItem(inspectionId, code, outcome, note, photos) }

    /**
     * Turns the camera's JPEG at [path] into evidence (oriented, 1600 px,
     * watermarked with time, place, coordinates, [takenBy] and the shop; EXIF
     * removed). Put the returned hash in [record]'s or a report's photos; the
     * camera file may be deleted afterwards.
     */
    suspend fun capturePhoto(
        path: String,
        takenBy: String,
        atMs: Long,
        fix: Fix? = null,
        shopId: String? = null,
        place: String? = null,
    ): Answer<PhotoView> = call { capturePhoto(path, takenBy, atMs, fix, shopId, place) }

    /** The file of a photo or thumbnail on this phone, to show it. */
    suspend fun photoPath(hash: String): Answer<String> = call { photoPath(hash) }
    suspend fun pendingPhotos(): Answer<Long> = call { pendingPhotos().toLong() }

    /** The phone's boot clock for records' clock evidence (the app passes Android's). */
    fun setDeviceClock(clock: DeviceClock) = store.setDeviceClock(clock)

    /** 时间可信 / 时间存疑 / 时间待核验 for an inspection, report or patrol. */
    suspend fun timeCheck(recordId: String): Answer<TimeVerdict> = call { timeCheck(recordId) }
    suspend fun patrolSummary(patrolId: String): Answer<PatrolSummary> = call { patrolSummary(patrolId) }

    suspend fun submit(inspectionId: String, atMs: Long): Answer<SubmitResult> =
        call { submitInspection(inspectionId, atMs) }

    suspend fun report(report: CaseReport): Answer<String> = call { reportCase(report) }
    /** Moves a case (受理, 派遣 with a whistle, 处置, 核查, 结案); a move the role may not make is [Problem.NotAllowed]. */
    suspend fun moveCase(id: String, move: CaseMoveInput): Answer<Unit> = call { moveCase(id, move) }

    /** Today's due shops in walking order from where the officer stands, and the red-flag holders left off. */
    suspend fun todayPlan(subdistrict: String?, lat: Double, lon: Double, nowMs: Long): Answer<DayPlanView> =
        call { todayPlan(subdistrict, lat, lon, nowMs) }

    /** A shop's credit grade (A–D), stars, red flag and last week's place. */
    suspend fun standing(shopId: String, nowMs: Long): Answer<StandingView> = call { shopStanding(shopId, nowMs) }

    /** One shop's rectification ledger, or (no shop) every open item on the phone. */
    suspend fun rectifications(shopId: String?, nowMs: Long): Answer<List<RectificationView>> =
        call { rectifications(shopId, nowMs) }

    suspend fun cases(status: CaseState? = null, limit: Int = 100): Answer<List<CaseRow>> =
        call { cases(status, limit.toUInt()) }

    suspend fun startPatrol(user: String, atMs: Long): Answer<String> = call { startPatrol(user, atMs) }
    suspend fun appendTrack(patrolId: String, points: List<TrackFix>): Answer<Unit> =
        call { appendTrack(patrolId, points) }
    /** Stores a recorder's batch, dropping fixes that can never be stored; answers how many were dropped. */
    suspend fun recordFixes(patrolId: String, points: List<TrackFix>): Answer<UInt> =
        call { recordFixes(patrolId, points) }
    suspend fun stopPatrol(patrolId: String, atMs: Long): Answer<Unit> = call { stopPatrol(patrolId, atMs) }
    /** The user's open patrol if it began within 12 h (the service was restarted), else a new one. */
    suspend fun resumeOrStartPatrol(user: String, atMs: Long): Answer<PatrolStart> =
        call { resumeOrStartPatrol(user, atMs) }

    /** Enrolls with the station's address and code as typed (a public certificate over https). */
    suspend fun enroll(serverUrl: String, code: String, deviceName: String): Answer<Enrollment> =
        call { enroll(serverUrl, code, deviceName) }

    /**
     * Enrolls through the station's link or QR code (`https://…/enroll?code=…&ca=…`):
     * with a CA pin, this phone trusts the station's own CA from then on.
     * Save [Enrollment.serverUrl] with the token.
     */
    suspend fun enrollLink(link: String, deviceName: String): Answer<Enrollment> =
        call { enrollLink(link, deviceName) }

    suspend fun pendingChanges(): Answer<Long> = call { pendingChanges().toLong() }

    /**
     * Syncs with the station: emits [SyncState.Running] as pages go, then one
     * [SyncState.Done] or [SyncState.Failed]. Cancelling the collector cancels
     * the sync at its next page; whatever finished stays.
     */
    fun sync(serverUrl: String, token: String): Flow<SyncState> = callbackFlow {
        val cancel = CancelHandle()
        val listener = object : ProgressListener {
            override fun onProgress(phase: Phase, done: ULong, total: ULong): Boolean {
                trySend(SyncState.Running(phase, done.toLong(), total.toLong()))
                return true
            }
        }
        launch {
            val end = try {
                SyncState.Done(store.sync(serverUrl, token, listener, cancel))
            } catch (e: MenqianException) {
                SyncState.Failed(Problem.of(e))
            }
            send(end)
            close()
        }
        awaitClose { cancel.cancel() }
    }.flowOn(io)

    override fun close() = store.close()
}
