//! Group commit: pushes that arrive while a group is being written wait
//! for the next group, which applies them all in one transaction with one
//! durable commit. Each device is answered only after the commit that holds
//! its push; a refused push does not hold up the others of its group
//! (ADR 0014).
//!
//! On the embedded store one thread writes the groups with the store's
//! writer. On a city's database ([`Authority`]) several threads each merge
//! a group on a connection of their own, side by side, and the instance's
//! writer then takes in what each group committed.

use std::sync::{Arc, Mutex};

use menqian_core::{ApplyReport, GroupedPush, Writer};
use prometheus_client::metrics::counter::Counter;

use super::{ApiError, SharedStore, internal};
use crate::store::{Authority, StoreResult};

/// A push waiting for its group's commit ([`super::Station::push_grouped`]).
pub(super) struct WaitingPush {
    pub push: GroupedPush,
    pub answer: tokio::sync::oneshot::Sender<Result<ApplyReport, ApiError>>,
}

impl std::fmt::Debug for WaitingPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingPush")
            .field("changes", &self.push.changes.len())
            .finish_non_exhaustive()
    }
}

/// The most changes one group takes in (more wait for the next): a group's
/// transaction holds the writer, or a city's document locks, so it stays
/// short.
const GROUP_CHANGES: usize = 5_000;

/// Where pushes wait for their group. The threads end when the station is
/// dropped.
#[derive(Debug)]
pub(super) struct Committer {
    queue: std::sync::mpsc::Sender<WaitingPush>,
}

impl Committer {
    /// Starts the threads that write the groups: one with the store's writer,
    /// or, when the store has an [`Authority`], as many as it merges groups
    /// side by side.
    pub fn start(
        writer: SharedStore,
        authority: Option<Arc<dyn Authority>>,
        groups: Counter,
    ) -> Self {
        let (queue, waiting) = std::sync::mpsc::channel::<WaitingPush>();
        let waiting = Arc::new(Mutex::new(waiting));
        let threads = authority.as_ref().map_or(1, |a| a.groups_at_once().max(1));
        for n in 0..threads {
            let (waiting, writer, authority, groups) = (
                waiting.clone(),
                writer.clone(),
                authority.clone(),
                groups.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("committer-{n}"))
                .spawn(move || {
                    while let Some(group) = next_group(&waiting) {
                        groups.inc();
                        // A panic answers this group's devices with an error
                        // (their answers are dropped); the thread goes on.
                        let committed =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                match &authority {
                                    Some(authority) => {
                                        commit_merged(authority.as_ref(), &writer, group)
                                    }
                                    None => commit_group(&writer, group),
                                }
                            }));
                        if committed.is_err() {
                            tracing::error!("a group commit panicked");
                        }
                    }
                });
            if let Err(e) = spawned {
                // Without any thread every push is answered with an error.
                tracing::error!(error = %e, "starting a committer thread");
            }
        }
        Committer { queue }
    }

    /// Queues a push; an error when the committer threads are gone.
    pub fn send(&self, push: WaitingPush) -> Result<(), ApiError> {
        self.queue.send(push).map_err(|_| internal())
    }
}

/// The next group: the first push to arrive and every one waiting behind
/// it, up to [`GROUP_CHANGES`]; `None` once the station is gone. One thread
/// at a time waits here; the others wait for it.
fn next_group(waiting: &Mutex<std::sync::mpsc::Receiver<WaitingPush>>) -> Option<Vec<WaitingPush>> {
    let waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
    let first = waiting.recv().ok()?;
    let mut changes = first.push.changes.len();
    let mut group = vec![first];
    while changes < GROUP_CHANGES {
        let Ok(next) = waiting.try_recv() else { break };
        changes += next.push.changes.len();
        group.push(next);
    }
    Some(group)
}

/// Applies one group with the store's writer and answers each device.
fn commit_group(writer: &SharedStore, group: Vec<WaitingPush>) {
    let (pushes, answers): (Vec<_>, Vec<_>) = group.into_iter().map(|w| (w.push, w.answer)).unzip();
    let mut guard = lock_writer(writer);
    let applied = guard
        .push_group(pushes)
        .and_then(|results| guard.publish().map(|()| results));
    drop(guard);
    answer(answers, applied);
}

/// Merges one group in the city's database, then has the instance's writer
/// take in what it committed (the read model catches up once for the
/// group), and answers each device.
fn commit_merged(authority: &dyn Authority, writer: &SharedStore, group: Vec<WaitingPush>) {
    let (pushes, answers): (Vec<_>, Vec<_>) = group.into_iter().map(|w| (w.push, w.answer)).unzip();
    let touched: Vec<(Writer, Vec<String>)> = pushes
        .iter()
        .map(|p| (p.writer.clone(), p.doc_ids()))
        .collect();
    let results = authority.push_group(pushes).and_then(|results| {
        let mut guard = lock_writer(writer);
        guard.accepted(&crate::store::accepted_pushes(touched, &results))?;
        guard.publish()?;
        Ok(results)
    });
    answer(answers, results);
}

fn lock_writer(
    writer: &SharedStore,
) -> std::sync::MutexGuard<'_, Box<dyn crate::store::SyncStore>> {
    writer.lock().unwrap_or_else(|p| {
        tracing::error!("a request panicked while holding the store's writer");
        p.into_inner()
    })
}

/// Each device its push's answer, or the group's error.
fn answer(
    answers: Vec<tokio::sync::oneshot::Sender<Result<ApplyReport, ApiError>>>,
    results: StoreResult<Vec<StoreResult<ApplyReport>>>,
) {
    match results {
        Ok(results) => {
            for (answer, result) in answers.into_iter().zip(results) {
                // A device that hung up has nobody to hear it.
                let _ = answer.send(result.map_err(ApiError::from));
            }
        }
        Err(e) => {
            let e = ApiError::from(e);
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}
