package cn.menqian.app

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import cn.menqian.Answer
import cn.menqian.Problem
import cn.menqian.ScanGate
import cn.menqian.ScanOutcome
import cn.menqian.SyncState
import cn.menqian.core.CaseReport
import cn.menqian.core.CaseRow
import cn.menqian.core.DayPlanView
import cn.menqian.core.RectificationView
import cn.menqian.core.StandingView
import cn.menqian.core.InspectionView
import cn.menqian.core.Outcome
import cn.menqian.core.ReportSource
import cn.menqian.core.ShopRow
import cn.menqian.core.ShopView
import cn.menqian.core.SubmitResult
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch

/** Screen state for the whole app; every action goes through the core. */
class AppViewModel(app: Application) : AndroidViewModel(app) {
    private val menqian = (app as MenqianApp).menqian
    val account = app.let { (it as MenqianApp).account }

    val problem = MutableStateFlow<Problem?>(null)
    val today = MutableStateFlow<List<ShopRow>>(emptyList())
    /** An officer's plan for today (due shops in walking order, red-flag holders). */
    val plan = MutableStateFlow<DayPlanView?>(null)
    val standing = MutableStateFlow<StandingView?>(null)
    val rectifications = MutableStateFlow<List<RectificationView>>(emptyList())
    val shop = MutableStateFlow<ShopView?>(null)
    val inspection = MutableStateFlow<InspectionView?>(null)
    val submitted = MutableStateFlow<SubmitResult?>(null)
    val cases = MutableStateFlow<List<CaseRow>>(emptyList())
    val pending = MutableStateFlow(0L)
    private val _sync = MutableStateFlow<SyncState?>(null)
    val sync: StateFlow<SyncState?> = _sync
    private var syncJob: Job? = null

    // `problem` inside the receiver would be the answer's own Problem: name the flow.
    private fun <T> Answer<T>.handled(): T? = when (this) {
        is Answer.Ok -> value
        is Answer.Err -> {
            this@AppViewModel.problem.value = problem
            null
        }
    }

    /** Enrolls with an address and a code as typed (the enrollment QR code: [scannedEnrollment]). */
    fun enroll(server: String, code: String, deviceName: String, done: () -> Unit) =
        viewModelScope.launch {
            menqian.enroll(server.trim(), code.trim(), deviceName).handled()?.let { enrolled(it, done) }
        }

    private fun enrolled(e: cn.menqian.core.Enrollment, done: () -> Unit) {
        account.save(e.serverUrl, e.userId, e.role, e.token)
        done()
        syncNow()
    }

    /**
     * Today's list. For an officer or lane chief with a position: the core's
     * plan (re-checks, never inspected, due by grade, less red-flag holders,
     * in walking order). Otherwise, or while searching: a street's shops or
     * the search result.
     */
    fun loadToday(fix: cn.menqian.core.Fix?, street: String = "富义街", query: String = "") =
        viewModelScope.launch {
            val planner = account.role == "officer" || account.role == "lane_chief"
            plan.value = if (query.isBlank() && planner && fix != null) {
                menqian.todayPlan(null, fix.lat, fix.lon, System.currentTimeMillis()).handled()
            } else {
                null
            }
            val rows = if (query.isBlank()) menqian.shopsOn(street) else menqian.search(query)
            rows.handled()?.let { today.value = it }
            menqian.pendingChanges().handled()?.let { pending.value = it }
        }

    /** The scanners' gates: one payload at a time, and they keep scanning after a refused code. */
    private val shopGate = ScanGate { menqian.scan(it) }
    private val enrollGate = ScanGate { menqian.enrollLink(it, android.os.Build.MODEL) }

    /** What the scanner last refused, shown under the camera while it keeps scanning. */
    val scanRefused = MutableStateFlow<Problem?>(null)

    /** A new scan screen: scan again from the start. */
    fun scanStarted() {
        shopGate.reset()
        enrollGate.reset()
        scanRefused.value = null
    }

    fun scanned(payload: String, open: (String) -> Unit) = viewModelScope.launch {
        when (val outcome = shopGate.offer(payload)) {
            is ScanOutcome.Accepted -> {
                scanRefused.value = null
                shop.value = outcome.value
                open(outcome.value.id)
            }
            is ScanOutcome.Refused -> scanRefused.value = outcome.problem
            ScanOutcome.Ignored -> {}
        }
    }

    /** A scanned enrollment QR code: enrolls through its link (CA pin included). */
    fun scannedEnrollment(payload: String, done: () -> Unit) = viewModelScope.launch {
        when (val outcome = enrollGate.offer(payload)) {
            is ScanOutcome.Accepted -> {
                scanRefused.value = null
                enrolled(outcome.value, done)
            }
            is ScanOutcome.Refused -> scanRefused.value = outcome.problem
            ScanOutcome.Ignored -> {}
        }
    }

    fun openShop(id: String) = viewModelScope.launch {
        menqian.shop(id).handled()?.let { shop.value = it }
        val now = System.currentTimeMillis()
        standing.value = menqian.standing(id, now).handled()
        menqian.rectifications(id, now).handled()?.let { rectifications.value = it }
    }

    /** The fix the inspection started with: photos taken during it carry it too. */
    private var lastFix: cn.menqian.core.Fix? = null

    fun startInspection(shopId: String, fix: cn.menqian.core.Fix?, open: (String) -> Unit) =
        viewModelScope.launch {
            val user = account.user ?: return@launch
            lastFix = fix
            menqian.startInspection(shopId, "beijing-1v5", user, System.currentTimeMillis(), fix)
                .handled()?.let { id ->
                    submitted.value = null
                    refreshInspection(id)
                    open(id)
                }
        }

    private suspend fun refreshInspection(id: String) {
        menqian.inspection(id).handled()?.let { inspection.value = it }
    }

    /**
     * Turns the camera file into watermarked evidence. The camera file is
     * deleted only once the evidence is stored: a failed capture keeps it.
     */
    private suspend fun evidence(cameraFile: String?, shopId: String?): String? {
        cameraFile ?: return null
        val user = account.user ?: return null
        val photo = menqian.capturePhoto(cameraFile, user, System.currentTimeMillis(), lastFix, shopId).handled()
            ?: return null
        java.io.File(cameraFile).delete()
        return photo.hash
    }

    fun record(id: String, code: String, outcome: Outcome, cameraFile: String?) = viewModelScope.launch {
        val shopId = inspection.value?.shopId
        val photo = evidence(cameraFile, shopId)
        if (cameraFile != null && photo == null) return@launch
        menqian.record(id, code, outcome, photos = listOfNotNull(photo)).handled()
        refreshInspection(id)
    }

    fun submit(id: String) = viewModelScope.launch {
        menqian.submit(id, System.currentTimeMillis()).handled()?.let { submitted.value = it }
        refreshInspection(id)
    }

    fun report(category: String, description: String, lat: Double, lon: Double, shopId: String?, cameraFile: String?, done: () -> Unit) =
        viewModelScope.launch {
            val user = account.user ?: return@launch
            val photo = evidence(cameraFile, shopId)
            if (cameraFile != null && photo == null) return@launch
            val source = if (account.role == "steward") ReportSource.STEWARD else ReportSource.INSPECTION
            val report = CaseReport(
                source, category, lat, lon, shopId, listOfNotNull(photo), description, user,
                System.currentTimeMillis(),
            )
            menqian.report(report).handled()?.let { done() }
        }

    fun loadCases() = viewModelScope.launch {
        menqian.cases().handled()?.let { cases.value = it }
    }

    fun syncNow() {
        val server = account.server ?: return
        val token = account.token ?: return
        syncJob?.cancel()
        syncJob = viewModelScope.launch {
            menqian.sync(server, token).collect { state ->
                _sync.value = state
                if (state is SyncState.Failed && state.problem is Problem.Unauthorized) account.forget()
            }
            menqian.pendingChanges().handled()?.let { pending.value = it }
        }
    }

    fun cancelSync() {
        syncJob?.cancel()
    }
}
