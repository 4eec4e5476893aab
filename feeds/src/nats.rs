//! NATS JetStream: the bus between one `tickgate publish` process and many
//! gateway replicas (docs/nats.md).
//!
//! What lives here, shared by both roles:
//! - [`NatsSettings`]: the `nats` table (servers, stream, subject prefix,
//!   credentials, TLS), validated into a [`NatsPlan`]; [`NatsPlan::connect`]
//!   opens a client that reconnects by itself and reports its link state.
//! - The subject scheme: `<prefix>.<escaped symbol>` ([`subject_for`],
//!   [`symbol_of`]) and the publisher heartbeat subject `<prefix>.$hb`.
//! - The wire format: a quote is its client-protocol JSON (every field,
//!   `seq` and `ts` included); [`decode_quote`] turns one back into a
//!   [`Tick`] carrying `seq`, so every replica adopts the publisher's `seq`.
//!
//! And the gateway side, the `kind = "nats"` feed ([`run`]): on every
//! (re)connect it loads the last message of every subject (an ordered
//! consumer with `DeliverPolicy::LastPerSubject`), reports `live` once that
//! load is complete, then follows live messages. It reports `down` while
//! NATS is unreachable, `stale` when the publisher's heartbeats stop or say
//! its upstream is not live. Nothing here buffers without bound: ticks go to
//! the gateway through the pipeline's bounded channel, and the only map kept
//! holds one `seq` per symbol of the stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::{ConnectOptions, Event, ServerAddr};
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::FeedPlan;
use crate::model::{Symbol, Tick, TickKind};
use crate::parse::{JsonScratch, ParseError, unsigned};
use crate::runner::{Pipeline, Stop};
use crate::telemetry;
use crate::{FeedState, now_micros};

/// Last token of the publisher's heartbeat subject. `$` never appears in an
/// escaped symbol, so it cannot collide with one.
pub const HEARTBEAT_TOKEN: &str = "$hb";

/// Most ticks handed to the gateway in one batch.
const BATCH: usize = 512;

/// Time allowed for one JetStream API request (stream info, consumer create).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The `nats` table of a `kind = "nats"` feed and of `[publish]`: where the
/// bus is, how to authenticate, and which stream and subjects to use. Both
/// sides must agree on `stream` and `subject_prefix`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// Server URLs (`nats://`, `tls://`, or `host:port`); the client picks
    /// one and fails over to the others.
    pub urls: Vec<String>,
    /// JetStream stream holding the last quote of every symbol.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<escaped symbol>`.
    pub subject_prefix: String,
    /// User name (with `password` or `password_env`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Authentication token.
    pub token: Option<String>,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// NKey seed (`SU…`).
    pub nkey_seed: Option<String>,
    /// Environment variable holding the NKey seed.
    pub nkey_seed_env: Option<String>,
    /// A `.creds` file (user JWT and NKey seed), as issued by `nsc`.
    pub creds_file: Option<PathBuf>,
    /// Extra PEM CA certificate(s) trusted for TLS to NATS.
    pub ca_file: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    pub tls_required: bool,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            stream: "TICKGATE".into(),
            subject_prefix: "md.quote".into(),
            user: None,
            password: None,
            password_env: None,
            token: None,
            token_env: None,
            nkey_seed: None,
            nkey_seed_env: None,
            creds_file: None,
            ca_file: None,
            tls_required: false,
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("urls", &self.urls)
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "<redacted>"))
            .field("nkey_seed_env", &self.nkey_seed_env)
            .field("creds_file", &self.creds_file)
            .field("ca_file", &self.ca_file)
            .field("tls_required", &self.tls_required)
            .finish()
    }
}

/// One problem with a `nats` table: the key (`nats.urls`, …) and what is wrong.
pub type SettingsProblem = (&'static str, String);

/// How a client proves who it is. Secrets are never printed.
#[derive(Clone)]
enum Auth {
    None,
    UserPassword(String, String),
    Token(String),
    NKey(String),
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::UserPassword(..) => "user/password",
            Self::Token(_) => "token",
            Self::NKey(_) => "nkey",
            Self::CredsFile(_) => "creds file",
        })
    }
}

/// Validated [`NatsSettings`].
#[derive(Debug, Clone)]
pub struct NatsPlan {
    servers: Vec<ServerAddr>,
    auth: Auth,
    ca_file: Option<PathBuf>,
    tls_required: bool,
    /// The stream name.
    pub stream: String,
    /// The subject prefix (no trailing dot).
    pub subject_prefix: String,
}

impl NatsSettings {
    /// Checks every key; reports every problem, each naming its key.
    pub fn validate(&self) -> Result<NatsPlan, Vec<SettingsProblem>> {
        let mut problems: Vec<SettingsProblem> = Vec::new();
        let mut servers = Vec::new();
        if self.urls.is_empty() {
            problems.push(("nats.urls", "must list at least one server".into()));
        }
        for url in &self.urls {
            match url.parse::<ServerAddr>() {
                Ok(addr) => servers.push(addr),
                Err(error) => problems.push((
                    "nats.urls",
                    format!("has {url:?}, not a NATS server URL ({error})"),
                )),
            }
        }
        if self.stream.is_empty()
            || self.stream.len() > 64
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push((
                "nats.stream",
                "must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        if !valid_prefix(&self.subject_prefix) {
            problems.push((
                "nats.subject_prefix",
                "must be dot-separated tokens without spaces, '*' or '>' (e.g. md.quote)".into(),
            ));
        }
        let auth = self.auth(&mut problems);
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            problems.push(("nats.ca_file", format!("{} is not a file", path.display())));
        }
        if problems.is_empty() {
            Ok(NatsPlan {
                servers,
                auth,
                ca_file: self.ca_file.clone(),
                tls_required: self.tls_required,
                stream: self.stream.clone(),
                subject_prefix: self.subject_prefix.clone(),
            })
        } else {
            Err(problems)
        }
    }

    fn auth(&self, problems: &mut Vec<SettingsProblem>) -> Auth {
        let mut secret =
            |key: &'static str, value: &Option<String>, env: &Option<String>| match (value, env) {
                (Some(_), Some(_)) => {
                    problems.push((key, "and its `_env` form are both set; keep one".into()));
                    None
                }
                (Some(value), None) => Some(value.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(value) if !value.is_empty() => Some(value),
                    _ => {
                        problems.push((
                            key,
                            format!("names environment variable {var}, which is unset or empty"),
                        ));
                        None
                    }
                },
                (None, None) => None,
            };
        let password = secret("nats.password", &self.password, &self.password_env);
        let token = secret("nats.token", &self.token, &self.token_env);
        let seed = secret("nats.nkey_seed", &self.nkey_seed, &self.nkey_seed_env);
        let methods = [
            self.user.is_some() || password.is_some(),
            token.is_some(),
            seed.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push((
                "nats.user",
                "choose one of user/password, token, nkey_seed and creds_file".into(),
            ));
            return Auth::None;
        }
        if let Some(path) = &self.creds_file {
            if !path.is_file() {
                problems.push((
                    "nats.creds_file",
                    format!("{} is not a file", path.display()),
                ));
            }
            return Auth::CredsFile(path.clone());
        }
        match (&self.user, password, token, seed) {
            (Some(user), Some(password), _, _) => Auth::UserPassword(user.clone(), password),
            (Some(_), None, _, _) => {
                problems.push(("nats.user", "needs `password` or `password_env`".into()));
                Auth::None
            }
            (None, Some(_), _, _) => {
                problems.push(("nats.password", "needs `user`".into()));
                Auth::None
            }
            (None, None, Some(token), _) => Auth::Token(token),
            (None, None, None, Some(seed)) => Auth::NKey(seed),
            (None, None, None, None) => Auth::None,
        }
    }
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

/// Whether the client is connected, and how many times it has connected: a
/// change of `generation` means a new connection (reload the snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    pub connected: bool,
    pub generation: u64,
}

impl NatsPlan {
    /// The wildcard covering every quote subject: `<prefix>.>`.
    pub fn filter_subject(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// The publisher heartbeat subject: `<prefix>.$hb`.
    pub fn heartbeat_subject(&self) -> String {
        format!("{}.{HEARTBEAT_TOKEN}", self.subject_prefix)
    }

    /// Opens a client that keeps reconnecting by itself (its first connect
    /// too), with capped exponential delays between `backoff_min` and
    /// `backoff_max`. Connection changes are published on the returned
    /// watch. Fails only when the credentials file cannot be read.
    pub async fn connect(
        &self,
        name: &str,
        connect_timeout: Duration,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> Result<(async_nats::Client, watch::Receiver<Link>), String> {
        let options = match &self.auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword(user, password) => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => ConnectOptions::with_token(token.clone()),
            Auth::NKey(seed) => ConnectOptions::with_nkey(seed.clone()),
            Auth::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        };
        let mut options = options
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(connect_timeout)
            .ping_interval(Duration::from_secs(10))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .reconnect_delay_callback(move |attempts| {
                reconnect_delay(backoff_min, backoff_max, attempts)
            });
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        let (link_tx, link_rx) = watch::channel(Link::default());
        let link_tx = Arc::new(link_tx);
        let client_name: Arc<str> = Arc::from(name);
        let options = options.event_callback(move |event| {
            let link_tx = Arc::clone(&link_tx);
            let client_name = Arc::clone(&client_name);
            async move {
                match event {
                    Event::Connected => link_tx.send_modify(|link| {
                        link.connected = true;
                        link.generation += 1;
                    }),
                    Event::Disconnected => link_tx.send_modify(|link| link.connected = false),
                    other => debug!(client = &*client_name, "nats event: {other}"),
                }
            }
        });
        let client = options
            .connect(self.servers.clone())
            .await
            .map_err(|error| error.to_string())?;
        Ok((client, link_rx))
    }
}

/// Delay before reconnect attempt `attempts` (1-based): none for the first,
/// then doubling from `min`, capped at `max`, with up to 50 % jitter.
pub fn reconnect_delay(min: Duration, max: Duration, attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempts - 2).min(30) as u32;
    let ceiling = min.saturating_mul(1 << doublings).min(max);
    let half = ceiling / 2;
    let spread = (ceiling - half).as_micros() as u64;
    let jitter = if spread == 0 {
        0
    } else {
        now_micros().wrapping_mul(0x9E37_79B9_7F4A_7C15) % (spread + 1)
    };
    half + Duration::from_micros(jitter)
}

/// Escapes a symbol into one NATS subject token: every byte other than
/// `A-Z a-z 0-9 - _ / : ^` becomes `%XX` (upper-case hex). Of the characters
/// a symbol may hold, only `.` is escaped (`BRK.B` → `BRK%2EB`); `*`, `>`,
/// whitespace and `%` itself would be too.
pub fn escape_symbol(symbol: &str) -> String {
    let mut token = String::with_capacity(symbol.len() + 4);
    for byte in symbol.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_/:^".contains(&byte) {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// Reverses [`escape_symbol`]; `None` for a token that is not a valid
/// escaped symbol.
pub fn unescape_token(token: &str) -> Option<Symbol> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Symbol::parse(std::str::from_utf8(&out).ok()?).ok()
}

/// `<prefix>.<escaped symbol>`.
pub fn subject_for(prefix: &str, symbol: &Symbol) -> String {
    format!("{prefix}.{}", escape_symbol(symbol.as_str()))
}

/// The symbol a quote subject names; `None` for other subjects (the
/// heartbeat, or anything not under `<prefix>.`).
pub fn symbol_of(prefix: &str, subject: &str) -> Option<Symbol> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    if token.contains('.') {
        return None;
    }
    unescape_token(token)
}

/// Decodes one published quote (its client-protocol JSON) into a tick that
/// carries every field and the publisher's `seq`. A quote is state, so the
/// tick is always of kind `quote`: applying it sets the fields, it does not
/// add a trade.
pub fn decode_quote(scratch: &mut JsonScratch, buf: &mut [u8]) -> Result<Tick, ParseError> {
    scratch.parse(buf, |root| {
        let obj = root
            .as_object()
            .ok_or(ParseError::WrongType { field: "quote" })?;
        let mut tick = crate::json::tick_from_object(&obj)?;
        tick.kind = TickKind::Quote;
        tick.seq = Some(unsigned(&obj, "seq")?.ok_or(ParseError::WrongType { field: "seq" })?);
        Ok(tick)
    })?
}

/// The publisher's heartbeat: when it was sent and whether the publisher's
/// own upstream is live. Published every second or so on `<prefix>.$hb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Heartbeat {
    /// Microseconds since the Unix epoch at the publisher.
    pub ts: u64,
    /// True while the publisher's upstream feeds are live.
    pub live: bool,
}

/// Loads and follows a stream until shutdown; see the module doc.
pub(crate) async fn run(plan: FeedPlan, nats: NatsPlan, mut pipeline: Pipeline) {
    let shutdown = pipeline.shutdown_token();
    let feed = Arc::clone(&plan.name);
    let connected = nats
        .connect(
            &format!("tickgate feed {feed}"),
            plan.connect_timeout,
            plan.backoff_min,
            plan.backoff_max,
        )
        .await;
    let (client, mut link) = match connected {
        Ok(client) => client,
        Err(error) => {
            warn!(feed = &*feed, "nats feed cannot start: {error}");
            let _ = pipeline.set_state(FeedState::Down).await;
            shutdown.cancelled().await;
            return;
        }
    };
    let mut context = async_nats::jetstream::new(client);
    context.set_timeout(REQUEST_TIMEOUT);
    let mut follower = Follower {
        plan: &plan,
        nats: &nats,
        context,
        seen: HashMap::new(),
        scratch: JsonScratch::default(),
    };
    let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max, now_micros());
    let mut first = true;
    loop {
        let state = if first {
            FeedState::Connecting
        } else {
            FeedState::Down
        };
        first = false;
        if pipeline.set_state(state).await.is_err() {
            return;
        }
        // Wait for a connection (the client retries by itself).
        let generation = tokio::select! {
            _ = shutdown.cancelled() => return,
            up = connected_generation(&mut link) => match up {
                Some(generation) => generation,
                None => return,
            },
        };
        if pipeline.set_state(FeedState::Connecting).await.is_err() {
            return;
        }
        match follower.session(&mut pipeline, &mut link, generation).await {
            Err(Stop) => return,
            Ok(Session::Reconnected) => {
                info!(feed = &*feed, "nats reconnected: reloading the snapshot");
                backoff.reset();
            }
            Ok(Session::Failed(reason)) => {
                warn!(feed = &*feed, "nats feed interrupted: {reason}");
                if pipeline.set_state(FeedState::Down).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep(backoff.next_delay()) => {}
                }
            }
        }
        telemetry::reconnect(&feed);
    }
}

/// Why a session ended.
enum Session {
    /// The client lost its connection (and maybe got a new one): start over.
    Reconnected,
    /// Stream missing, consumer failed, …: back off, then start over.
    Failed(String),
}

struct Follower<'a> {
    plan: &'a FeedPlan,
    nats: &'a NatsPlan,
    context: async_nats::jetstream::Context,
    /// Last `seq` handed on per symbol: a reload skips what the gateway has.
    /// One entry per symbol of the stream.
    seen: HashMap<Symbol, u64>,
    scratch: JsonScratch,
}

impl Follower<'_> {
    /// Loads the last value of every subject, reports `live`, follows.
    async fn session(
        &mut self,
        pipeline: &mut Pipeline,
        link: &mut watch::Receiver<Link>,
        generation: u64,
    ) -> Result<Session, Stop> {
        let shutdown = pipeline.shutdown_token();
        let feed = Arc::clone(&self.plan.name);
        let started = Instant::now();
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return Err(Stop),
            () = link_lost(link, generation) => return Ok(Session::Reconnected),
            opened = timeout(REQUEST_TIMEOUT * 2, open_last_per_subject(&self.context, self.nats)) => opened,
        };
        let (mut messages, mut remaining) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => return Ok(Session::Failed(error)),
            Err(_) => return Ok(Session::Failed("timed out opening the stream".into())),
        };
        let mut loading = true;
        let mut loaded = 0u64;
        let mut unchanged = 0u64;
        let mut last_alive = Instant::now();
        let heartbeat_subject = self.nats.heartbeat_subject();
        loop {
            if loading && remaining == 0 {
                pipeline.flush(false).await?;
                loading = false;
                last_alive = Instant::now();
                telemetry::nats_snapshot_loaded(&feed, started.elapsed());
                info!(
                    feed = &*feed,
                    symbols = loaded,
                    unchanged,
                    ms = started.elapsed().as_millis() as u64,
                    "nats snapshot loaded"
                );
                pipeline.set_state(FeedState::Live).await?;
            }
            if unchanged > 0 && !loading {
                telemetry::nats_unchanged(&feed, std::mem::take(&mut unchanged));
            }
            let stale_at = last_alive + self.plan.staleness;
            let live = pipeline.state() == Some(FeedState::Live);
            // Take what is ready without waiting; wait only when nothing is.
            let next = match messages.next().now_or_never() {
                Some(next) => next,
                None => {
                    pipeline.flush(false).await?;
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(Stop),
                        () = link_lost(link, generation) => return Ok(Session::Reconnected),
                        _ = sleep_until(stale_at), if live => {
                            warn!(feed = &*feed, silent_ms = self.plan.staleness.as_millis() as u64,
                                "nats feed stale: no publisher heartbeat");
                            pipeline.set_state(FeedState::Stale).await?;
                            continue;
                        }
                        next = messages.next() => next,
                    }
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Ok(Session::Failed(format!("consumer: {error}"))),
                None => return Ok(Session::Failed("consumer ended".into())),
            };
            if let Ok(info) = message.info() {
                remaining = info.pending;
            }
            if message.subject.as_str() == heartbeat_subject {
                let beat: Option<Heartbeat> = serde_json::from_slice(&message.payload).ok();
                let fresh = beat.is_some_and(|b| {
                    b.live
                        && now_micros().saturating_sub(b.ts)
                            < self.plan.staleness.as_micros() as u64
                });
                if !loading {
                    if fresh {
                        last_alive = Instant::now();
                        if pipeline.state() == Some(FeedState::Stale) {
                            pipeline.set_state(FeedState::Live).await?;
                        }
                    } else if beat.is_some_and(|b| !b.live) && live {
                        warn!(
                            feed = &*feed,
                            "nats feed stale: the publisher's upstream is not live"
                        );
                        pipeline.set_state(FeedState::Stale).await?;
                    }
                }
                continue;
            }
            let mut payload = message.payload.to_vec();
            let tick = match decode_quote(&mut self.scratch, &mut payload) {
                Ok(tick) => tick,
                Err(error) => {
                    pipeline.reject(error.kind(), &error);
                    continue;
                }
            };
            let (Some(symbol), Some(seq)) = (tick.symbol, tick.seq) else {
                continue;
            };
            let known = self.seen.entry(symbol).or_insert(0);
            if seq <= *known {
                unchanged += 1;
                continue;
            }
            *known = seq;
            if loading {
                loaded += 1;
            } else {
                last_alive = Instant::now();
                if pipeline.state() == Some(FeedState::Stale) {
                    pipeline.flush(false).await?;
                    pipeline.set_state(FeedState::Live).await?;
                }
            }
            pipeline.push(&tick);
            if pipeline.pending_len() >= BATCH {
                pipeline.flush(false).await?;
            }
        }
    }
}

/// Waits for a connection; its generation, or `None` when the client is gone.
async fn connected_generation(link: &mut watch::Receiver<Link>) -> Option<u64> {
    link.wait_for(|l| l.connected)
        .await
        .ok()
        .map(|l| l.generation)
}

/// Returns once connection `generation` is lost (or replaced by a newer
/// one); never when the client is gone.
async fn link_lost(link: &mut watch::Receiver<Link>, generation: u64) {
    let lost = link
        .wait_for(|l| !l.connected || l.generation != generation)
        .await
        .is_ok();
    if !lost {
        std::future::pending::<()>().await;
    }
}

/// An ordered consumer over `<prefix>.>` starting with the last message of
/// every subject, and how many messages it has to deliver before it has
/// caught up with the stream as it was when created.
pub async fn open_last_per_subject(
    context: &async_nats::jetstream::Context,
    nats: &NatsPlan,
) -> Result<(async_nats::jetstream::consumer::pull::Ordered, u64), String> {
    let stream = context
        .get_stream(&nats.stream)
        .await
        .map_err(|error| format!("stream {}: {error}", nats.stream))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: nats.filter_subject(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|error| format!("creating a consumer on {}: {error}", nats.stream))?;
    let remaining = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| format!("consuming {}: {error}", nats.stream))?;
    Ok((messages, remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid symbol")
    }

    #[test]
    fn symbols_escape_into_one_token_and_back() {
        for (symbol, token) in [
            ("AAPL", "AAPL"),
            ("BRK.B", "BRK%2EB"),
            ("BTC-USD", "BTC-USD"),
            ("EUR/USD", "EUR/USD"),
            ("^SPX", "^SPX"),
            ("X:Y.Z", "X:Y%2EZ"),
            ("a_b", "a_b"),
        ] {
            assert_eq!(escape_symbol(symbol), token);
            assert_eq!(unescape_token(token), Some(sym(symbol)));
            assert_eq!(
                symbol_of("md.quote", &subject_for("md.quote", &sym(symbol))),
                Some(sym(symbol))
            );
        }
        assert_eq!(symbol_of("md.quote", "md.quote.$hb"), None);
        assert_eq!(symbol_of("md.quote", "md.quote.A.B"), None);
        assert_eq!(symbol_of("md.quote", "md.other.A"), None);
        assert_eq!(unescape_token("A%2"), None);
        assert_eq!(unescape_token("A%ZZ"), None);
        assert_eq!(unescape_token("A%20B"), None, "a space is no symbol");
    }

    #[test]
    fn a_published_quote_decodes_to_a_tick_with_every_field_and_seq() {
        let mut scratch = JsonScratch::default();
        let mut text = br#"{"symbol":"AAPL","seq":42,"bid":1.5,"ask":1.6,"bid_size":10.0,"ask_size":20.0,"last":1.55,"last_size":5.0,"volume":900.0,"open":1.4,"high":1.7,"low":1.3,"prev_close":1.45,"change":0.1,"change_pct":6.896552,"ts":1764000000000000}"#.to_vec();
        let tick = decode_quote(&mut scratch, &mut text).expect("decodes");
        assert_eq!(tick.symbol, Some(sym("AAPL")));
        assert_eq!(tick.seq, Some(42));
        assert_eq!(tick.kind, TickKind::Quote);
        assert_eq!(
            (tick.bid, tick.ask, tick.last),
            (Some(1.5), Some(1.6), Some(1.55))
        );
        assert_eq!(
            (tick.open, tick.high, tick.low),
            (Some(1.4), Some(1.7), Some(1.3))
        );
        assert_eq!(tick.prev_close, Some(1.45));
        assert_eq!(tick.ts, Some(1_764_000_000_000_000));
        let mut no_seq = br#"{"symbol":"AAPL","bid":1.5}"#.to_vec();
        assert!(decode_quote(&mut scratch, &mut no_seq).is_err());
        let mut garbage = b"{not json".to_vec();
        assert_eq!(
            decode_quote(&mut scratch, &mut garbage),
            Err(ParseError::MalformedJson)
        );
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let settings = NatsSettings {
            urls: vec!["nats://127.0.0.1:4222".into(), "::::".into()],
            stream: "bad.name".into(),
            subject_prefix: "md.*".into(),
            user: Some("u".into()),
            token: Some("t".into()),
            ..NatsSettings::default()
        };
        let problems = settings.validate().expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|(key, _)| *key).collect();
        for key in [
            "nats.urls",
            "nats.stream",
            "nats.subject_prefix",
            "nats.user",
        ] {
            assert!(keys.contains(&key), "{key} missing in {problems:?}");
        }
        assert!(NatsSettings::default().validate().is_ok());
        let env = NatsSettings {
            token_env: Some("TICKGATE_TEST_UNSET_VARIABLE_XYZ".into()),
            ..NatsSettings::default()
        };
        let problems = env.validate().expect_err("unset env");
        assert_eq!(problems[0].0, "nats.token");
    }

    #[test]
    fn secrets_are_not_printed() {
        let settings = NatsSettings {
            user: Some("reader".into()),
            password: Some("hunter2".into()),
            ..NatsSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
        let plan = settings.validate().expect("valid");
        assert!(!format!("{plan:?}").contains("hunter2"));
    }

    #[test]
    fn reconnect_delays_grow_and_stay_capped() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(reconnect_delay(min, max, 1), Duration::ZERO);
        for attempts in 2..100 {
            let delay = reconnect_delay(min, max, attempts);
            assert!(delay <= max && delay >= min / 2, "{attempts}: {delay:?}");
        }
    }
}
