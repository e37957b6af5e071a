package cn.menqian.app

import android.Manifest
import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Intent
import android.content.pm.PackageManager
import android.content.pm.ServiceInfo
import android.location.Location
import android.location.LocationListener
import android.location.LocationManager
import android.os.Build
import android.os.Bundle
import android.os.IBinder
import android.os.Looper
import androidx.core.app.ServiceCompat
import androidx.core.content.ContextCompat
import cn.menqian.Answer
import cn.menqian.PatrolRecorder
import cn.menqian.core.TrackFix
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Records a patrol track while the screen is off: a foreground service with a
 * location notification and GPS at 1 Hz. The recording itself (batches, the
 * flush before the stop, resuming after a restart) is the library's
 * [PatrolRecorder], tested on the JVM; this class only wires Android to it and
 * never blocks the main thread.
 */
class PatrolService : Service(), LocationListener {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val app get() = application as MenqianApp
    private val recorder by lazy { PatrolRecorder(app.menqian, scope) }
    private var listening = false

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        if (intent?.action == STOP) {
            stop()
            return START_NOT_STICKY
        }
        // A START_STICKY restart arrives with a null intent: the recorder then
        // continues the patrol left open, it does not start a second one.
        val user = app.account.user
        if (user == null || !hasFineLocation()) {
            stopSelf()
            return START_NOT_STICKY
        }
        ServiceCompat.startForeground(
            this, NOTIFICATION, notification(),
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) ServiceInfo.FOREGROUND_SERVICE_TYPE_LOCATION else 0,
        )
        running = true
        scope.launch {
            when (recorder.start(user, System.currentTimeMillis())) {
                is Answer.Ok -> withContext(Dispatchers.Main) { listen() }
                is Answer.Err -> withContext(Dispatchers.Main) { finish() }
            }
        }
        return START_STICKY
    }

    private fun hasFineLocation(): Boolean =
        ContextCompat.checkSelfPermission(this, Manifest.permission.ACCESS_FINE_LOCATION) ==
            PackageManager.PERMISSION_GRANTED

    private fun listen() {
        if (listening) return
        try {
            getSystemService(LocationManager::class.java)
                .requestLocationUpdates(LocationManager.GPS_PROVIDER, 1_000L, 0f, this, Looper.getMainLooper())
            listening = true
        } catch (_: SecurityException) {
            // The permission was taken away while the patrol ran.
            stop()
        }
    }

    override fun onLocationChanged(location: Location) {
        recorder.add(TrackFix(location.latitude, location.longitude, location.accuracy.toDouble(), location.time))
    }

    // Abstract before API 30 (minSdk is 26): without them the service cannot be built for older phones.
    @Deprecated("Deprecated in Java")
    override fun onStatusChanged(provider: String?, status: Int, extras: Bundle?) {}
    override fun onProviderEnabled(provider: String) {}
    override fun onProviderDisabled(provider: String) {}

    /** Stops listening, lets the recorder store every point and end the patrol, then goes. */
    private fun stop() {
        if (listening) getSystemService(LocationManager::class.java).removeUpdates(this)
        listening = false
        scope.launch {
            recorder.stop(System.currentTimeMillis())
            withContext(Dispatchers.Main) { finish() }
        }
    }

    private fun finish() {
        running = false
        ServiceCompat.stopForeground(this, ServiceCompat.STOP_FOREGROUND_REMOVE)
        stopSelf()
    }

    private fun notification(): Notification {
        val manager = getSystemService(NotificationManager::class.java)
        manager.createNotificationChannel(
            NotificationChannel(CHANNEL, getString(R.string.patrol_channel), NotificationManager.IMPORTANCE_LOW),
        )
        return Notification.Builder(this, CHANNEL)
            .setContentTitle(getString(R.string.patrol_running))
            .setSmallIcon(android.R.drawable.ic_menu_mylocation)
            .setOngoing(true)
            .build()
    }

    override fun onDestroy() {
        if (listening) getSystemService(LocationManager::class.java).removeUpdates(this)
        scope.cancel()
        super.onDestroy()
    }

    override fun onBind(intent: Intent?): IBinder? = null

    companion object {
        const val STOP = "cn.menqian.app.STOP_PATROL"
        private const val CHANNEL = "patrol"
        private const val NOTIFICATION = 1
        @Volatile var running = false
    }
}
