package cn.menqian.app

import android.annotation.SuppressLint
import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Intent
import android.content.pm.ServiceInfo
import android.location.Location
import android.location.LocationListener
import android.location.LocationManager
import android.os.IBinder
import android.os.Looper
import cn.menqian.core.TrackFix
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking

/**
 * Records a patrol track while the screen is off: a foreground service with a
 * location notification, GPS at 1 Hz, points appended to the core in batches of
 * ten (each batch is one transaction, so a killed app loses at most ten seconds).
 */
class PatrolService : Service(), LocationListener {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val batch = mutableListOf<TrackFix>()
    private var patrolId: String? = null
    private val app get() = application as MenqianApp

    @SuppressLint("MissingPermission")
    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        if (intent?.action == STOP) {
            stop()
            return START_NOT_STICKY
        }
        startForeground(1, notification(), ServiceInfo.FOREGROUND_SERVICE_TYPE_LOCATION)
        val user = app.account.user ?: return START_NOT_STICKY.also { stopSelf() }
        running = true
        scope.launch {
            patrolId = app.menqian.startPatrol(user, System.currentTimeMillis()).valueOrNull()
        }
        getSystemService(LocationManager::class.java)
            .requestLocationUpdates(LocationManager.GPS_PROVIDER, 1_000L, 0f, this, Looper.getMainLooper())
        return START_STICKY
    }

    override fun onLocationChanged(location: Location) {
        batch += TrackFix(location.latitude, location.longitude, location.accuracy.toDouble(), location.time)
        if (batch.size >= 10) flush()
    }

    private fun flush() {
        val id = patrolId ?: return
        val points = batch.toList()
        batch.clear()
        scope.launch { app.menqian.appendTrack(id, points) }
    }

    private fun stop() {
        getSystemService(LocationManager::class.java).removeUpdates(this)
        flush()
        patrolId?.let { id -> runBlocking { app.menqian.stopPatrol(id, System.currentTimeMillis()) } }
        running = false
        stopForeground(STOP_FOREGROUND_REMOVE)
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
        scope.cancel()
        super.onDestroy()
    }

    override fun onBind(intent: Intent?): IBinder? = null

    companion object {
        const val STOP = "cn.menqian.app.STOP_PATROL"
        private const val CHANNEL = "patrol"
        @Volatile var running = false
    }
}
