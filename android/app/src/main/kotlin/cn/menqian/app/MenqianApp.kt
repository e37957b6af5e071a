package cn.menqian.app

import android.app.Application
import android.content.Context
import androidx.security.crypto.EncryptedSharedPreferences
import androidx.security.crypto.MasterKey
import cn.menqian.Answer
import cn.menqian.Menqian
import kotlinx.coroutines.runBlocking

/** Holds the phone's store and its enrollment for the whole process. */
class MenqianApp : Application() {
    lateinit var menqian: Menqian
        private set
    lateinit var account: Account
        private set

    override fun onCreate() {
        super.onCreate()
        account = Account(this)
        val path = filesDir.resolve("menqian.sqlite").path
        // Opening is fast (milliseconds) and everything after needs the store.
        menqian = when (val opened = runBlocking { Menqian.open(path, listOf(SIGNBOARD_HOST)) }) {
            is Answer.Ok -> opened.value
            is Answer.Err -> error("cannot open the store: ${opened.problem.text}")
        }
        menqian.setDeviceClock(AndroidClock(this))
    }

    companion object {
        /** The district's signboard host; a QR link to any other host is refused. */
        const val SIGNBOARD_HOST = "mq.fengtai.example.cn"
    }
}

/**
 * The boot clock for records' clock evidence: elapsedRealtime counts deep sleep
 * and cannot be set by the user; the boot count tells a reboot apart.
 */
class AndroidClock(private val context: Context) : cn.menqian.core.DeviceClock {
    override fun bootId(): String =
        android.provider.Settings.Global.getInt(
            context.contentResolver, android.provider.Settings.Global.BOOT_COUNT, -1,
        ).toString()

    override fun sinceBootMs(): Long = android.os.SystemClock.elapsedRealtime()
}

/** The enrollment: server, user and token, in encrypted preferences (Android Keystore). */
class Account(context: Context) {
    private val prefs = EncryptedSharedPreferences.create(
        context,
        "account",
        MasterKey.Builder(context).setKeyScheme(MasterKey.KeyScheme.AES256_GCM).build(),
        EncryptedSharedPreferences.PrefKeyEncryptionScheme.AES256_SIV,
        EncryptedSharedPreferences.PrefValueEncryptionScheme.AES256_GCM,
    )

    val server: String? get() = prefs.getString("server", null)
    val token: String? get() = prefs.getString("token", null)
    val user: String? get() = prefs.getString("user", null)
    val role: String? get() = prefs.getString("role", null)
    val enrolled: Boolean get() = token != null

    fun save(server: String, user: String, role: String, token: String) {
        prefs.edit()
            .putString("server", server)
            .putString("user", user)
            .putString("role", role)
            .putString("token", token)
            .apply()
    }

    fun forget() = prefs.edit().clear().apply()
}
