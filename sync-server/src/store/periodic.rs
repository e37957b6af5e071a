//! Background work on a thread of its own, repeated until its owner drops it:
//! the embedded store's WAL checkpoints, a city instance's sequencer and its
//! following of the feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A thread running a piece of work every `period`; dropping it stops the
/// thread after the run in progress.
#[derive(Debug)]
pub struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    pub fn start(
        name: &str,
        period: std::time::Duration,
        mut work: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    work();
                    std::thread::sleep(period);
                }
            })?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
