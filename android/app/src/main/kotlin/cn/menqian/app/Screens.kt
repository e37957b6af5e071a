package cn.menqian.app

import android.Manifest
import android.annotation.SuppressLint
import android.content.Context
import android.content.Intent
import android.location.Location
import android.location.LocationManager
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Build
import android.provider.Settings
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.unit.dp
import androidx.core.content.ContextCompat
import androidx.core.content.FileProvider
import cn.menqian.SyncState
import cn.menqian.core.Fix
import cn.menqian.core.Outcome
import java.io.File

private val pad = Modifier.padding(16.dp)

/**
 * Enrollment: scan the station's enrollment QR code (its link carries the
 * station's CA pin), or type the address and the code.
 */
@Composable
fun EnrollScreen(vm: AppViewModel, scanLink: () -> Unit, done: () -> Unit) {
    var server by remember { mutableStateOf("https://") }
    var code by remember { mutableStateOf("") }
    Column(pad, verticalArrangement = Arrangement.spacedBy(12.dp)) {
        Text("设备登记")
        Button(onClick = scanLink, modifier = Modifier.fillMaxWidth()) { Text("扫描登记二维码") }
        Text("或手动输入：")
        OutlinedTextField(server, { server = it }, label = { Text("服务器地址") })
        OutlinedTextField(code, { code = it.uppercase() }, label = { Text("一次性登记码（8位）") })
        Button(onClick = { vm.enroll(server, code, android.os.Build.MODEL, done) }, enabled = code.length == 8) {
            Text("登记本机")
        }
    }
}

@Composable
fun TodayScreen(
    vm: AppViewModel,
    openShop: (String) -> Unit,
    scan: () -> Unit,
    report: () -> Unit,
    patrol: () -> Unit,
    sync: () -> Unit,
) {
    val shops by vm.today.collectAsState()
    val plan by vm.plan.collectAsState()
    val pending by vm.pending.collectAsState()
    val context = LocalContext.current
    var query by remember { mutableStateOf("") }
    LaunchedEffect(query) { vm.loadToday(lastFix(context), query = query) }
    Column(pad) {
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = scan) { Text("扫码") }
            OutlinedButton(onClick = report) { Text("上报") }
            OutlinedButton(onClick = patrol) { Text("巡查") }
            OutlinedButton(onClick = sync) { Text(if (pending > 0) "同步（$pending）" else "同步") }
        }
        OutlinedTextField(query, { query = it }, label = { Text("搜索店名或地址") }, modifier = Modifier.fillMaxWidth())
        val p = plan
        LazyColumn {
            if (p != null) {
                item { Text("今日任务 ${p.date}：${p.stops.size} 家，步行约 ${p.walkM.toInt()} 米" + if (p.leftForLater > 0u) "（另有 ${p.leftForLater} 家待安排）" else "") }
                items(p.stops, key = { "plan-" + it.shopId }) { s ->
                    Column(Modifier.fillMaxWidth().clickable { openShop(s.shopId) }.padding(vertical = 8.dp)) {
                        Text("${s.name}  ${"★".repeat(s.stars.toInt())}  ${s.grade}级")
                        Text("${s.reason} · ${s.address} · ${s.legM.toInt()} 米")
                    }
                }
                items(p.exempt, key = { "flag-" + it.shopId }) { s ->
                    Text("🚩 ${s.name} · ${s.badge}", Modifier.fillMaxWidth().clickable { openShop(s.shopId) }.padding(vertical = 8.dp))
                }
            } else {
                items(shops, key = { it.id }) { s ->
                    Column(Modifier.fillMaxWidth().clickable { openShop(s.id) }.padding(vertical = 8.dp)) {
                        Text(s.name)
                        Text(s.address)
                    }
                }
            }
        }
    }
}

@Composable
fun ShopScreen(vm: AppViewModel, id: String, inspect: (String) -> Unit, report: () -> Unit) {
    val shop by vm.shop.collectAsState()
    val context = LocalContext.current
    LaunchedEffect(id) { vm.openShop(id) }
    val s = shop ?: return
    Column(pad, verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Text(s.name)
        Text("${s.category} · ${s.address}")
        Text("门牌码 ${s.code}")
        if (s.contactPerson.isNotEmpty()) Text("联系人 ${s.contactPerson} ${s.contactPhone}")
        Text(if (s.letter != null) "已签责任书（${s.letter}）" else "未签责任书")
        if (s.tags.isNotEmpty()) Text(s.tags.joinToString("、"))
        val st by vm.standing.collectAsState()
        st?.let {
            Text("${"★".repeat(it.stars.toInt())} ${it.gradeLabel}（信用分 ${it.creditScore}）" + if (it.exempt) " · 🚩流动红旗 免检一周" else "")
            it.lastWeekRank?.let { r -> Text("上周得分 ${it.lastWeekScore}，街内第 $r / ${it.streetShops} 名") }
        }
        val items by vm.rectifications.collectAsState()
        for (r in items.filter { !it.closed }) {
            Text("整改：${r.itemText} · ${r.state} · 期限 ${java.text.SimpleDateFormat("MM-dd HH:mm").format(java.util.Date(r.deadlineMs))}")
        }
        if (vm.account.role != "steward") {
            Button(onClick = { vm.startInspection(s.id, lastFix(context), inspect) }) { Text("开始检查") }
        }
        OutlinedButton(onClick = report) { Text("上报问题") }
    }
}

@Composable
fun ChecklistScreen(vm: AppViewModel, id: String) {
    val inspection by vm.inspection.collectAsState()
    val submitted by vm.submitted.collectAsState()
    // Saveable: the camera app may push this activity out of memory.
    var photoFor by rememberSaveable { mutableStateOf<String?>(null) }
    val camera = rememberCamera { file ->
        val code = photoFor ?: return@rememberCamera
        // The view model turns the camera file into watermarked evidence.
        if (file != null) vm.record(id, code, Outcome.FAIL, file.path)
        photoFor = null
    }
    val i = inspection ?: return
    Column(pad) {
        Text(i.checklist)
        submitted?.let { Text("得分 ${it.score} · ${it.verdict}") }
        LazyColumn(Modifier.weight(1f)) {
            items(i.lines, key = { it.code }) { line ->
                Column(Modifier.padding(vertical = 8.dp)) {
                    Text("${line.duty}｜${line.text}")
                    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                        FilterChip(line.outcome == Outcome.PASS, { vm.record(id, line.code, Outcome.PASS, null) }, { Text("合格") }, enabled = !i.submitted)
                        FilterChip(line.outcome == Outcome.FAIL, {
                            if (line.photoOnFail) {
                                photoFor = line.code
                                camera()
                            } else {
                                vm.record(id, line.code, Outcome.FAIL, null)
                            }
                        }, { Text("不合格") }, enabled = !i.submitted)
                        FilterChip(line.outcome == Outcome.NOT_APPLICABLE, { vm.record(id, line.code, Outcome.NOT_APPLICABLE, null) }, { Text("不适用") }, enabled = !i.submitted)
                    }
                }
            }
        }
        if (!i.submitted) Button(onClick = { vm.submit(id) }, modifier = Modifier.fillMaxWidth()) { Text("提交检查") }
    }
}

@Composable
fun ReportScreen(vm: AppViewModel, done: () -> Unit) {
    val shop by vm.shop.collectAsState()
    val context = LocalContext.current
    var category by remember { mutableStateOf("0504") }
    var description by remember { mutableStateOf("") }
    var photo by remember { mutableStateOf<File?>(null) }
    val camera = rememberCamera { photo = it }
    Column(pad, verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Text(shop?.let { "上报：${it.name}" } ?: "上报问题")
        OutlinedTextField(category, { category = it }, label = { Text("问题类别编码（如 0504 店外经营）") })
        OutlinedTextField(description, { description = it }, label = { Text("问题描述") })
        OutlinedButton(onClick = camera) { Text(if (photo == null) "拍照" else "重新拍照") }
        Button(onClick = {
            val fix = lastFix(context)
            val lat = fix?.lat ?: shop?.lat ?: return@Button
            val lon = fix?.lon ?: shop?.lon ?: return@Button
            vm.report(category, description, lat, lon, shop?.id, photo?.path, done)
        }) { Text("提交上报") }
    }
}

/**
 * Patrol: asks for precise and approximate location together (Android 12+
 * lets the user pick either) and, on Android 13+, for notifications (the
 * patrol's foreground notification). A track needs precise location: a user
 * who chose "approximate" is told so and can open the settings.
 */
@Composable
fun PatrolScreen(vm: AppViewModel) {
    val context = LocalContext.current
    var running by remember { mutableStateOf(PatrolService.running) }
    var approximateOnly by remember { mutableStateOf(false) }
    val wanted = buildList {
        add(Manifest.permission.ACCESS_FINE_LOCATION)
        add(Manifest.permission.ACCESS_COARSE_LOCATION)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.TIRAMISU) add(Manifest.permission.POST_NOTIFICATIONS)
    }.toTypedArray()
    val permission = rememberLauncherForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) { granted ->
        if (granted[Manifest.permission.ACCESS_FINE_LOCATION] == true) {
            approximateOnly = false
            ContextCompat.startForegroundService(context, Intent(context, PatrolService::class.java))
            running = true
        } else {
            approximateOnly = granted[Manifest.permission.ACCESS_COARSE_LOCATION] == true
        }
    }
    Column(pad, verticalArrangement = Arrangement.spacedBy(12.dp)) {
        Text(if (running) "巡查中：轨迹每秒记录一次，锁屏也继续" else "开始巡查后记录 GPS 轨迹")
        if (approximateOnly) {
            Text("巡查轨迹需要精确位置：请在系统设置中为本应用开启“使用确切位置”。")
            OutlinedButton(onClick = {
                context.startActivity(
                    Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", context.packageName, null)),
                )
            }) { Text("打开设置") }
        }
        if (running) {
            Button(onClick = {
                context.startService(Intent(context, PatrolService::class.java).setAction(PatrolService.STOP))
                running = false
            }) { Text("结束巡查") }
        } else {
            Button(onClick = { permission.launch(wanted) }) { Text("开始巡查") }
        }
    }
}

@Composable
fun SyncScreen(vm: AppViewModel) {
    val state by vm.sync.collectAsState()
    val pending by vm.pending.collectAsState()
    Column(pad, verticalArrangement = Arrangement.spacedBy(12.dp)) {
        Text("待上传的修改：$pending")
        when (val s = state) {
            is SyncState.Running -> {
                Text(if (s.phase.name == "PUSH") "正在上传…" else "正在下载…")
                if (s.total > 0) LinearProgressIndicator(progress = { s.done.toFloat() / s.total })
                OutlinedButton(onClick = vm::cancelSync) { Text("取消") }
            }
            is SyncState.Done -> Text("同步完成：上传 ${s.summary.pushed}，下载 ${s.summary.pulled}")
            is SyncState.Failed -> Text(s.problem.text)
            null -> Text("尚未同步")
        }
        Button(onClick = vm::syncNow, enabled = state !is SyncState.Running) { Text("立即同步") }
    }
}

/** The newest GPS fix the phone has, if location is allowed. */
@SuppressLint("MissingPermission")
fun lastFix(context: Context): Fix? {
    val lm = context.getSystemService(LocationManager::class.java) ?: return null
    val location: Location = try {
        lm.getLastKnownLocation(LocationManager.GPS_PROVIDER)
    } catch (_: SecurityException) {
        null
    } ?: return null
    return Fix(location.latitude, location.longitude, location.accuracy.toDouble(), location.time)
}

/**
 * The camera for evidence: asks for the CAMERA permission first (launching
 * the camera without it throws while the permission is declared), then takes
 * a photo into the app's evidence folder. [taken] gets the file, or null if
 * the user cancelled or refused.
 */
@Composable
fun rememberCamera(taken: (File?) -> Unit): () -> Unit {
    val context = LocalContext.current
    // A path, saveable: the camera app may push this activity out of memory
    // while it runs, and the photo must still be found when it comes back.
    var path by rememberSaveable { mutableStateOf<String?>(null) }
    val camera = rememberLauncherForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        taken(if (saved) path?.let(::File) else null)
    }
    val shoot = {
        val f = evidenceFile(context)
        path = f.path
        camera.launch(photoUri(context, f))
    }
    val permission = rememberLauncherForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) shoot() else taken(null)
    }
    return {
        if (ContextCompat.checkSelfPermission(context, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            shoot()
        } else {
            permission.launch(Manifest.permission.CAMERA)
        }
    }
}

fun evidenceFile(context: Context): File =
    File(context.filesDir, "evidence").apply { mkdirs() }.resolve("${System.currentTimeMillis()}.jpg")

fun photoUri(context: Context, file: File): Uri =
    FileProvider.getUriForFile(context, "cn.menqian.app.photos", file)
