//! Processes the integration tests start and end by their PID: a
//! `tickgate` process (gateway or publisher) read up to its `listening`
//! line, and a real `nats-server` with JetStream on a loopback port.
//! Everything binds 127.0.0.1.
//!
//! Plain blocking helpers (a start waits for a port or a line), called from
//! tests as the launchers they replace were.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::KillOnDrop;

/// How long a started process may take to listen.
const START_WAIT: Duration = Duration::from_secs(15);

/// Where a started process's stderr goes: nowhere, unless
/// `TICKGATE_TEST_LOG` is set (then to the test's stderr, to see why a run
/// failed; `TICKGATE_TEST_LOG=info` also raises the log level).
fn stderr() -> Stdio {
    if std::env::var_os("TICKGATE_TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// `RUST_LOG` of a started `tickgate`: `warn`, or `TICKGATE_TEST_LOG`'s
/// value when it names a level or filter.
fn log_level() -> String {
    std::env::var("TICKGATE_TEST_LOG")
        .ok()
        .filter(|level| !level.is_empty() && level != "1")
        .unwrap_or_else(|| "warn".to_owned())
}

/// A free loopback port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `tickgate` process and the addresses from its `listening` line.
pub struct Tickgate {
    pub process: KillOnDrop,
    pub listening: Value,
}

impl Tickgate {
    /// Runs the binary with `args` and `--config config`; returns once it
    /// printed its `listening` line.
    pub fn spawn(args: &[&str], config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickgate"))
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", log_level())
            .stdout(Stdio::piped())
            .stderr(stderr())
            .spawn()
            .expect("tickgate runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("listening line");
        let listening: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("listening line is JSON: {line:?}"));
        assert_eq!(listening["event"], "listening", "{line}");
        Self {
            process: KillOnDrop(child),
            listening,
        }
    }

    /// An address from the `listening` line: `client` or `admin`.
    pub fn addr(&self, key: &str) -> SocketAddr {
        self.listening[key]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {}", self.listening))
    }

    /// Whether the process has exited (a publisher that lost its lease
    /// exits so that a supervisor restarts it as standby).
    pub fn exited(&mut self) -> bool {
        !matches!(self.process.0.try_wait(), Ok(None))
    }

    /// kill -9 and wait: no goodbye, as a crash.
    pub fn stop(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }

    pub fn kill(mut self) {
        self.stop();
    }
}

/// A nats-server with JetStream on a loopback port and a store directory.
pub struct Nats {
    pub port: u16,
    pub store: PathBuf,
    pub process: Option<KillOnDrop>,
}

impl Nats {
    pub fn start(store: &Path) -> Self {
        let mut nats = Self {
            port: free_port(),
            store: store.to_owned(),
            process: None,
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port with the same store.
    pub fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run nats-server ({error}); install it: apt-get install -y nats-server \
                     (scripts/test.sh does this)"
                )
            });
        self.process = Some(KillOnDrop(child));
        let deadline = std::time::Instant::now() + START_WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP: the server hangs with its connections open, answering
    /// nothing, as a wedged or paused host does.
    pub fn hang(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Nats::hang`]: the server carries on where it stopped.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("nats-server runs");
        let status = Command::new("kill")
            .args([signal, &process.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// kill -9: no goodbye to clients, the store is left as it is (a hung
    /// server is killed as well: SIGKILL needs no SIGCONT).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.0.kill();
            let _ = process.0.wait();
        }
    }
}
