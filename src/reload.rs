//! What makes running files-backed settings (the TLS certificate, the JWT
//! verification keys) reload: SIGHUP, and changes in the directories that
//! hold their files.
//!
//! The *directories* are watched, not the files: secret updates (cert-manager,
//! Kubernetes projected volumes, `mv new.pem server.pem`) replace a file or a
//! `..data` symlink by an atomic rename, which a watch on the old file would
//! never see. Events are debounced, and the reload callbacks skip files that
//! hold what was last tried, so reading the files ourselves causes no loop.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::shutdown::Shutdown;

/// Quiet time after the last change before reloading: a rotation usually
/// replaces several files one after the other.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// A reload, run on the blocking pool (it reads files).
pub(crate) type Reload = Arc<dyn Fn() + Send + Sync>;

/// What a set of files held when they were last tried, so a change event
/// that leaves them as they were does not reload (or count) again.
pub(crate) struct LastTried(Mutex<u64>);

impl LastTried {
    /// Remembers `files`: their contents, `None` for one that could not be read.
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = Option<&'a [u8]>>) -> Self {
        Self(Mutex::new(fingerprint(files)))
    }

    /// Whether to reload now: always when `force`, else only when `files`
    /// differ from what was last tried. Remembers them either way.
    pub(crate) fn should_reload<'a>(
        &self,
        files: impl IntoIterator<Item = Option<&'a [u8]>>,
        force: bool,
    ) -> bool {
        let now = fingerprint(files);
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = *last != now;
        *last = now;
        force || changed
    }
}

/// A cheap identity of file contents.
fn fingerprint<'a>(files: impl IntoIterator<Item = Option<&'a [u8]>>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
    }
    hasher.finish()
}

/// Watches the directories of `files`; runs `reload` after a change to one
/// of them. `what` names the files in logs. On error, the path that could
/// not be watched.
pub(crate) fn watch_directories(
    files: &[PathBuf],
    what: &'static str,
    shutdown: &Shutdown,
    reload: Reload,
) -> Result<(), (PathBuf, notify::Error)> {
    let names: BTreeSet<OsString> = files
        .iter()
        .filter_map(|path| path.file_name().map(ToOwned::to_owned))
        .collect();
    let directories: BTreeSet<PathBuf> = files.iter().map(|path| directory_of(path)).collect();
    // Capacity 1: one pending "something changed" is all the reloader needs;
    // further events while it is pending are dropped.
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_relevant(&event, &names) => {
                let _ = changed_tx.try_send(());
            }
            Ok(_) => {}
            Err(error) => warn!(%error, what, "directory watch error"),
        })
        .map_err(|error| (files.first().cloned().unwrap_or_default(), error))?;
    for directory in &directories {
        watcher
            .watch(directory, RecursiveMode::NonRecursive)
            .map_err(|error| (directory.clone(), error))?;
    }
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        // The watcher stops when dropped: keep it for the life of this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = stop.stopped() => return,
                changed = changed_rx.recv() => if changed.is_none() { return },
            }
            loop {
                tokio::select! {
                    () = stop.stopped() => return,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    changed = changed_rx.recv() => if changed.is_none() { return },
                }
            }
            let reload = Arc::clone(&reload);
            let _ = tokio::task::spawn_blocking(move || reload()).await;
        }
    });
    Ok(())
}

/// Runs `reload` on every SIGHUP, whatever the files hold.
pub(crate) fn on_sighup(what: &'static str, shutdown: &Shutdown, reload: Reload) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before returning, so a SIGHUP right after start-up
        // reloads instead of killing the process.
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                warn!(%error, what, "cannot listen for SIGHUP; reload on SIGHUP is off");
                return;
            }
        };
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.stopped() => return,
                    received = hangup.recv() => if received.is_none() { return },
                }
                info!(what, "SIGHUP: reloading");
                let reload = Arc::clone(&reload);
                let _ = tokio::task::spawn_blocking(move || reload()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (what, shutdown, reload);
}

/// A change that may concern our files: creation, write, rename, removal of
/// one of them or of a `..data`-style symlink; an overflowed queue. Opens
/// and reads (our own reloads among them) are not changes.
fn is_relevant(event: &notify::Event, names: &BTreeSet<OsString>) -> bool {
    let kind_matters = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_matters
        && (event.paths.is_empty()
            || event.paths.iter().any(|path| {
                path.file_name().is_some_and(|name| {
                    names.contains(name) || name.to_string_lossy().starts_with("..")
                })
            }))
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}
