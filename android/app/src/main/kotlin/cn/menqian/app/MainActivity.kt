package cn.menqian.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
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
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { MenqianNav() } }
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
        composable("enroll") { EnrollScreen(vm) { nav.navigate("today") { popUpTo("enroll") { inclusive = true } } } }
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
        composable("scan") { ScanScreen { payload -> vm.scanned(payload) { id -> nav.navigate("shop/$id") { popUpTo("today") } } } }
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
