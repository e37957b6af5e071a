package cn.menqian.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.safeDrawingPadding
import androidx.compose.material3.Surface
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.ui.Modifier
import androidx.compose.material3.AlertDialog
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.lifecycle.viewmodel.compose.viewModel
import androidx.navigation.compose.NavHost
import androidx.navigation.compose.composable
import androidx.navigation.compose.rememberNavController

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        // Android 15 (targetSdk 35) draws edge to edge whatever the app asks;
        // do it on every version and keep content out of the system bars.
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Surface(Modifier.fillMaxSize()) {
                    Box(Modifier.fillMaxSize().safeDrawingPadding()) { MenqianNav() }
                }
            }
        }
    }
}

/** enroll → today's list → scan / shop → checklist; report, patrol, sync. */
@Composable
fun MenqianNav(vm: AppViewModel = viewModel()) {
    val nav = rememberNavController()
    val problem by vm.problem.collectAsState()
    problem?.let {
        AlertDialog(
            onDismissRequest = { vm.problem.value = null },
            confirmButton = { TextButton(onClick = { vm.problem.value = null }) { Text("知道了") } },
            text = { Text(it.text) },
        )
    }
    NavHost(nav, startDestination = if (vm.account.enrolled) "today" else "enroll") {
        val enrolled = { nav.navigate("today") { popUpTo("enroll") { inclusive = true } } }
        composable("enroll") { EnrollScreen(vm, scanLink = { nav.navigate("scan-enroll") }, done = enrolled) }
        composable("scan-enroll") {
            val refused by vm.scanRefused.collectAsState()
            LaunchedEffect(Unit) { vm.scanStarted() }
            ScanScreen(refused, "请对准登记二维码重新扫描") { payload -> vm.scannedEnrollment(payload) { enrolled() } }
        }
        composable("today") {
            TodayScreen(
                vm,
                openShop = { nav.navigate("shop/$it") },
                scan = { nav.navigate("scan") },
                report = { nav.navigate("report") },
                patrol = { nav.navigate("patrol") },
                sync = { nav.navigate("sync") },
            )
        }
        composable("scan") {
            val refused by vm.scanRefused.collectAsState()
            LaunchedEffect(Unit) { vm.scanStarted() }
            ScanScreen(refused, "请对准门牌二维码重新扫描") { payload ->
                vm.scanned(payload) { id -> nav.navigate("shop/$id") { popUpTo("today") } }
            }
        }
        composable("shop/{id}") { entry ->
            val id = entry.arguments?.getString("id").orEmpty()
            ShopScreen(vm, id, inspect = { nav.navigate("checklist/$it") }, report = { nav.navigate("report") })
        }
        composable("checklist/{id}") { entry -> ChecklistScreen(vm, entry.arguments?.getString("id").orEmpty()) }
        composable("report") { ReportScreen(vm) { nav.popBackStack() } }
        composable("patrol") { PatrolScreen(vm) }
        composable("sync") { SyncScreen(vm) }
    }
}
