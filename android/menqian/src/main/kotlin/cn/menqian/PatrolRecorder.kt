package cn.menqian

import cn.menqian.core.TrackFix
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch

/**
 * Records a patrol's track for the location service, away from the main thread.
 *
 * Fixes arrive from the location callback through [add], which never blocks or
 * suspends. One consumer coroutine takes every command in the order it was
 * given: fixes are buffered and appended in batches of [batchSize] (one
 * transaction each, so a killed app loses at most one batch), and [stop]
 * appends whatever is buffered before it ends the patrol, so the last points
 * can never land after the stop. [start] resumes the user's open patrol when
 * the service is restarted after the app was killed, instead of starting a
 * second one.
 */
class PatrolRecorder(
    private val menqian: Menqian,
    scope: CoroutineScope,
    private val batchSize: Int = 10,
) {
    private sealed interface Command {
        class Start(val user: String, val atMs: Long, val done: CompletableDeferred<Answer<String>>) : Command
        class Add(val fix: TrackFix) : Command
        class Stop(val atMs: Long, val done: CompletableDeferred<Answer<Unit>>) : Command
    }

    private val commands = Channel<Command>(Channel.UNLIMITED)
    private val buffer = mutableListOf<TrackFix>()

    /** The patrol being recorded, or null. */
    @Volatile
    var patrolId: String? = null
        private set

    /** The last problem appending points met; those points stay buffered and go with the next batch. */
    @Volatile
    var problem: Problem? = null
        private set

    init {
        scope.launch {
            for (command in commands) {
                when (command) {
                    is Command.Start -> command.done.complete(begin(command))
                    is Command.Add -> {
                        if (patrolId == null) continue
                        buffer += command.fix
                        if (buffer.size >= batchSize) flush()
                    }
                    is Command.Stop -> command.done.complete(end(command.atMs))
                }
            }
        }
    }

    /**
     * Starts recording for [user]: continues their open patrol if it began within
     * 12 hours (a restart), else begins a new one. Answers the patrol's id.
     */
    suspend fun start(user: String, atMs: Long): Answer<String> {
        val done = CompletableDeferred<Answer<String>>()
        commands.send(Command.Start(user, atMs, done))
        return done.await()
    }

    /** Queues a fix; safe from any thread, including the main looper's callback. */
    fun add(fix: TrackFix) {
        commands.trySend(Command.Add(fix))
    }

    /** Appends every queued fix, then ends the patrol. */
    suspend fun stop(atMs: Long): Answer<Unit> {
        val done = CompletableDeferred<Answer<Unit>>()
        commands.send(Command.Stop(atMs, done))
        return done.await()
    }

    private suspend fun begin(c: Command.Start): Answer<String> {
        patrolId?.let { return Answer.Ok(it) }
        return when (val started = menqian.resumeOrStartPatrol(c.user, c.atMs)) {
            is Answer.Ok -> Answer.Ok(started.value.id.also { patrolId = it })
            is Answer.Err -> started
        }
    }

    private suspend fun end(atMs: Long): Answer<Unit> {
        val id = patrolId ?: return Answer.Ok(Unit)
        // Points that could not be stored keep the patrol open: never end it without them.
        val flushed = flush()
        if (patrolId == null) return Answer.Ok(Unit)
        if (flushed is Answer.Err) return flushed
        val stopped = menqian.stopPatrol(id, atMs)
        if (stopped is Answer.Ok) patrolId = null
        return stopped
    }

    /**
     * Stores the buffer. Fixes that can never be stored (a cached fix from
     * before the start) are dropped by the core, so only a failing store keeps
     * them buffered for the next try.
     */
    private suspend fun flush(): Answer<Unit> {
        val id = patrolId ?: return Answer.Ok(Unit)
        if (buffer.isEmpty()) return Answer.Ok(Unit)
        return when (val stored = menqian.recordFixes(id, buffer.toList())) {
            is Answer.Ok -> {
                buffer.clear()
                problem = null
                Answer.Ok(Unit)
            }
            is Answer.Err -> {
                problem = stored.problem
                if (stored.problem is Problem.NotAllowed) {
                    // The patrol was ended elsewhere: nothing more can join it.
                    buffer.clear()
                    patrolId = null
                }
                stored
            }
        }
    }
}
