package cn.menqian.app

import android.Manifest
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalLifecycleOwner
import androidx.compose.ui.unit.dp
import androidx.compose.ui.viewinterop.AndroidView
import androidx.core.content.ContextCompat
import com.google.zxing.BarcodeFormat
import com.google.zxing.BinaryBitmap
import com.google.zxing.DecodeHintType
import com.google.zxing.MultiFormatReader
import com.google.zxing.NotFoundException
import com.google.zxing.PlanarYUVLuminanceSource
import com.google.zxing.common.HybridBinarizer
import cn.menqian.Problem
import java.util.concurrent.Executors

/**
 * Scans QR codes with CameraX and ZXing (no Google Play services). Every
 * payload decoded goes to [onPayload]: the view model's gate checks one at a
 * time with the core and keeps the camera running after a refused code
 * ([refused] is shown above the preview with [hint]), so the user can aim again.
 */
@Composable
fun ScanScreen(refused: Problem?, hint: String, onPayload: (String) -> Unit) {
    val owner = LocalLifecycleOwner.current
    var allowed by remember { mutableStateOf(false) }
    val permission = rememberLauncherForActivityResult(ActivityResultContracts.RequestPermission()) { allowed = it }
    LaunchedEffect(Unit) { permission.launch(Manifest.permission.CAMERA) }
    if (!allowed) {
        Column(Modifier.padding(16.dp)) { Text("扫码需要相机权限；也可以在首页输入门牌码搜索") }
        return
    }
    Column(Modifier.fillMaxSize()) {
        refused?.let { Text("${it.text}。$hint", Modifier.padding(16.dp)) }
        AndroidView(modifier = Modifier.fillMaxSize(), factory = { ctx -> preview(ctx, owner, onPayload) })
    }
}

/** The camera preview, handing every decoded QR payload to [onPayload] on the main thread. */
private fun preview(
    ctx: android.content.Context,
    owner: androidx.lifecycle.LifecycleOwner,
    onPayload: (String) -> Unit,
): PreviewView {
    val view = PreviewView(ctx)
    val providerFuture = ProcessCameraProvider.getInstance(ctx)
    providerFuture.addListener({
        val provider = providerFuture.get()
        val preview = Preview.Builder().build().also { it.surfaceProvider = view.surfaceProvider }
        val analysis = ImageAnalysis.Builder()
            .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
            .build()
        val reader = MultiFormatReader().apply {
            setHints(mapOf(DecodeHintType.POSSIBLE_FORMATS to listOf(BarcodeFormat.QR_CODE)))
        }
        analysis.setAnalyzer(Executors.newSingleThreadExecutor()) { image ->
            val text = decode(reader, image)
            image.close()
            if (text != null) ContextCompat.getMainExecutor(ctx).execute { onPayload(text) }
        }
        provider.unbindAll()
        provider.bindToLifecycle(owner, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
    }, ContextCompat.getMainExecutor(ctx))
    return view
}

/** Decodes a QR code from the luminance plane of a camera frame, or null. */
private fun decode(reader: MultiFormatReader, image: ImageProxy): String? {
    val plane = image.planes[0]
    val buffer = plane.buffer
    val bytes = ByteArray(buffer.remaining()).also { buffer.get(it) }
    val source = PlanarYUVLuminanceSource(
        bytes, plane.rowStride, image.height, 0, 0, image.width, image.height, false,
    )
    return try {
        reader.decodeWithState(BinaryBitmap(HybridBinarizer(source))).text
    } catch (_: NotFoundException) {
        null
    } finally {
        reader.reset()
    }
}
