//! What makes a running TLS listener reload its certificate: SIGHUP, and
//! changes in the directories holding the certificate and key.
//!
//! The *directories* are watched, not the files: secret updates (cert-manager,
//! Kubernetes projected volumes, `mv new.pem server.pem`) replace a file or a
//! `..data` symlink by an atomic rename, which a watch on the old file would
//! never see. Events are debounced, and a reload whose files hold what was
//! last tried does nothing, so reading the files ourselves causes no loop.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{TlsError, TlsServer};
use crate::state::AppState;

/// Quiet time after the last change before reloading: a rotation usually
/// replaces the certificate and the key one after the other.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches the certificate's and key's directories; reloads on a change.
pub(super) fn spawn_file_watcher(server: Arc<TlsServer>, state: &AppState) -> Result<(), TlsError> {
    let names: BTreeSet<OsString> = server
        .files()
        .iter()
        .filter_map(|path| path.file_name().map(ToOwned::to_owned))
        .collect();
    let directories: BTreeSet<PathBuf> = server
        .files()
        .iter()
        .map(|path| directory_of(path))
        .collect();
    // Capacity 1: one pending "something changed" is all the reloader needs;
    // further events while it is pending are dropped.
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_relevant(&event, &names) => {
                let _ = changed_tx.try_send(());
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "certificate directory watch error"),
        })
        .map_err(|error| watch_error(&server.cert_path, &error))?;
    for directory in &directories {
        watcher
            .watch(directory, RecursiveMode::NonRecursive)
            .map_err(|error| watch_error(directory, &error))?;
    }
    let shutdown = state.shutdown.clone();
    state.tracker.spawn(async move {
        // The watcher stops when dropped: keep it for the life of this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changed_rx.recv() => if changed.is_none() { return },
            }
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    changed = changed_rx.recv() => if changed.is_none() { return },
                }
            }
            let server = Arc::clone(&server);
            let _ = tokio::task::spawn_blocking(move || server.reload_if_changed()).await;
        }
    });
    Ok(())
}

/// Reloads on every SIGHUP, whatever the files hold.
pub(super) fn spawn_sighup(server: Arc<TlsServer>, state: &AppState) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before returning, so a SIGHUP right after start-up
        // reloads instead of killing the process.
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                warn!(%error, "cannot listen for SIGHUP; certificate reload on SIGHUP is off");
                return;
            }
        };
        let shutdown = state.shutdown.clone();
        state.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = hangup.recv() => if received.is_none() { return },
                }
                info!("SIGHUP: reloading the TLS certificate");
                let server = Arc::clone(&server);
                let _ = tokio::task::spawn_blocking(move || server.reload()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (server, state);
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

fn watch_error(path: &Path, error: &notify::Error) -> TlsError {
    TlsError::Watch {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}
