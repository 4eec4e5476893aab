//! The slow-consumer ladder: when a connection's socket stops taking what
//! the gateway writes, the client is told, not silently punished.
//!
//! 1. Conflation, always on (the outbox keeps one entry per symbol).
//! 2. Behind for `notice_after`: a `slow` notice, and the lowest-priority
//!    symbols are limited to `reduced_rate_hz`; each further `notice_after`
//!    still behind slows the next priority class. No blocked write for the
//!    recovery window (`recover_after` at first): full rate again, with a
//!    `restored` notice.
//! 3. Stalled: one write the socket has not taken for `close_after`:
//!    close 4008.
//!
//! "Behind" starts with a write the socket has not taken within
//! `blocked_write` and lasts until the recovery window passes without
//! another. A further class is slowed only when a write begun after the
//! previous slow-down blocks too: a write stuck since before it carries the
//! old backlog and says nothing about the reduced rate, which gets the
//! chance to prove itself first.
//!
//! Hysteresis: a slowed client's writes stop blocking *because* it was
//! slowed, so a quiet window alone cannot tell a client that caught up from
//! one the slow-down is carrying. A restore is therefore a probe. A client
//! that falls behind again within the window that restored it (a relapse)
//! goes straight back to the step it held, without a second `notice_after`
//! at full rate, and its next window is twice as long, up to
//! `max_recover_after`; a client that stays caught up for the window starts
//! afresh. Under sustained pressure a client stays in its step (the probes
//! thin out exponentially) and the classes above it keep their full rate
//! throughout; after a genuine recovery it is restored within
//! `max_recover_after`.
//!
//! [`Ladder`] only keeps time; [`climb`] applies its decision to the
//! connection's mailbox; the writer calls it with the time and performs the
//! close.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::config::SlowConsumerConfig;
use crate::fanout::Mailbox;
use crate::protocol;
use crate::session::CloseReason;
use crate::telemetry;

/// What the writer must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// Slow the next priority class and tell the client.
    SlowDown,
    /// Caught up: restore full rate (and tell the client if it was slowed).
    Restore,
    /// Behind for too long: close with 4008.
    Close,
}

/// One connection's position on the ladder.
#[derive(Debug)]
pub struct Ladder {
    blocked_write: Duration,
    notice_after: Option<Duration>,
    recover_after: Duration,
    max_recover_after: Duration,
    close_after: Option<Duration>,
    /// Start of the first blocked write of the current spell of being behind.
    behind_since: Option<Instant>,
    /// End (or latest sight) of the last blocked write.
    last_blocked: Option<Instant>,
    /// Start of the last blocked write.
    blocked_started: Option<Instant>,
    /// The last slow-down of this spell.
    slowed_at: Option<Instant>,
    /// Slow-downs done in this spell.
    slowed: u32,
    /// Slow-downs this spell owes at once: the step a relapse returns to.
    resume_to: u32,
    /// The quiet time that ends this spell: `recover_after`, doubled by
    /// each relapse up to `max_recover_after`.
    recover_window: Duration,
    /// The last restore of a slowed spell: when, and the step it left.
    restored: Option<(Instant, u32)>,
}

impl Ladder {
    /// A ladder with the configured thresholds.
    pub fn new(config: &SlowConsumerConfig) -> Self {
        Self {
            blocked_write: config.blocked_write,
            notice_after: config.notice_after,
            recover_after: config.recover_after,
            max_recover_after: config.max_recover_after.max(config.recover_after),
            close_after: config.close_after,
            behind_since: None,
            last_blocked: None,
            blocked_started: None,
            slowed_at: None,
            slowed: 0,
            resume_to: 0,
            recover_window: config.recover_after,
            restored: None,
        }
    }

    /// A write that started at `started` is finished, or still blocked, at
    /// `now`.
    pub fn observe_write(&mut self, started: Instant, now: Instant) {
        if now.saturating_duration_since(started) >= self.blocked_write {
            if self.behind_since.is_none() {
                self.start_spell(started);
            }
            self.last_blocked = Some(now);
            self.blocked_started = Some(started);
        }
    }

    /// A spell of being behind starts with a write that started at
    /// `started`: a relapse if it comes within the window that ended the
    /// last slowed spell.
    fn start_spell(&mut self, started: Instant) {
        self.behind_since = Some(started);
        self.slowed_at = None;
        match self.restored.take() {
            Some((at, step)) if started.saturating_duration_since(at) < self.recover_window => {
                self.resume_to = step;
                self.recover_window = (self.recover_window * 2).min(self.max_recover_after);
            }
            _ => {
                self.resume_to = 0;
                self.recover_window = self.recover_after;
            }
        }
    }

    /// Whether the connection is behind right now.
    pub fn is_behind(&self) -> bool {
        self.behind_since.is_some()
    }

    /// How long the current spell of being behind has lasted.
    pub fn behind_for(&self, now: Instant) -> Duration {
        self.behind_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    /// The quiet time that would restore full rate now.
    pub fn recover_window(&self) -> Duration {
        self.recover_window
    }

    /// Decides the next step at `now`; `writing_since` is the start of a
    /// write still in progress.
    pub fn poll(&mut self, now: Instant, writing_since: Option<Instant>) -> Step {
        let blocked_now = match writing_since {
            Some(started) => {
                self.observe_write(started, now);
                now.saturating_duration_since(started) >= self.blocked_write
            }
            None => self
                .last_blocked
                .is_some_and(|at| now.saturating_duration_since(at) <= self.blocked_write),
        };
        let (Some(since), Some(last)) = (self.behind_since, self.last_blocked) else {
            return Step::Stay;
        };
        if writing_since.is_none() && now.saturating_duration_since(last) >= self.recover_window {
            let step = std::mem::take(&mut self.slowed);
            self.behind_since = None;
            self.last_blocked = None;
            self.resume_to = 0;
            self.restored = (step > 0).then_some((now, step));
            return Step::Restore;
        }
        if let (Some(limit), Some(started)) = (self.close_after, writing_since)
            && now.saturating_duration_since(started) >= limit
        {
            return Step::Close;
        }
        if blocked_now && self.slowed < self.resume_to {
            self.slowed += 1;
            self.slowed_at = Some(now);
            return Step::SlowDown;
        }
        if blocked_now
            && self.blocked_since_slowing()
            && let Some(every) = self.notice_after
            && now.saturating_duration_since(since) >= self.next_slow_down(every)
        {
            self.slowed += 1;
            self.slowed_at = Some(now);
            return Step::SlowDown;
        }
        Step::Stay
    }

    /// Whether a write begun after the last slow-down of this spell has
    /// blocked (or there was none yet).
    fn blocked_since_slowing(&self) -> bool {
        self.slowed_at
            .is_none_or(|at| self.blocked_started.is_some_and(|started| started >= at))
    }

    /// How long after the start of the spell the next class is slowed: one
    /// `notice_after` per class, counting those a relapse returned to, so
    /// the backlog its probe queued at full rate has as long to drain as in
    /// a fresh spell.
    fn next_slow_down(&self, every: Duration) -> Duration {
        every * (self.slowed + 1)
    }

    /// When to poll again while a write that started at `started` is still
    /// blocked: when it starts to count as blocked, at the next slow-down
    /// (if this write can cause one), and at the close.
    pub fn next_deadline(&self, started: Instant) -> Option<Instant> {
        let blocked_at = started + self.blocked_write;
        let slow = self.notice_after.and_then(|every| match self.behind_since {
            Some(_) if self.slowed < self.resume_to => Some(blocked_at),
            // This write carries what was queued before the last slow-down.
            Some(_) if self.slowed_at.is_some_and(|at| started < at) => None,
            Some(since) => Some((since + self.next_slow_down(every)).max(blocked_at)),
            None => Some(blocked_at),
        });
        let close = self.close_after.map(|limit| started + limit);
        match (slow, close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Takes the ladder's next step at `now`: slows the next priority class to
/// `reduced_rate_hz` (every class a relapse returns to), restores full rate,
/// or says the connection must close. `writing_since` is the start of a
/// write still in progress. Notices are queued as control frames, which go
/// out before any data.
pub fn climb(
    ladder: &mut Ladder,
    now: Instant,
    writing_since: Option<Instant>,
    mailbox: &Mailbox,
    reduced_rate_hz: f64,
) -> Option<CloseReason> {
    loop {
        let behind_ms = ladder.behind_for(now).as_millis() as u64;
        match ladder.poll(now, writing_since) {
            Step::Stay => return None,
            Step::SlowDown => slow_down(mailbox, reduced_rate_hz, ladder.behind_for(now)),
            Step::Restore => {
                let was_slowed = mailbox.lock().restore();
                mailbox.stats.ladder_level.store(0, Ordering::Relaxed);
                if was_slowed {
                    telemetry::slow_consumer_step("restored");
                    mailbox.push_control([protocol::restored(behind_ms)]);
                }
                return None;
            }
            Step::Close => {
                telemetry::slow_consumer_step("closed");
                return Some(CloseReason::SlowConsumer);
            }
        }
    }
}

/// Slows the next priority class that has symbols and tells the client.
fn slow_down(mailbox: &Mailbox, reduced_rate_hz: f64, behind: Duration) {
    let slowed = {
        let mut outbox = mailbox.lock();
        let slowed = outbox.slow_down(Duration::from_secs_f64(1.0 / reduced_rate_hz));
        mailbox
            .stats
            .ladder_level
            .store(outbox.slowdown_level(), Ordering::Relaxed);
        slowed
    };
    if let Some((class, symbols)) = slowed {
        telemetry::slow_consumer_step("slowed");
        debug!(
            conn_id = mailbox.id,
            class = class.as_str(),
            "slow consumer slowed"
        );
        mailbox.push_control([protocol::slowed(
            class,
            reduced_rate_hz,
            &symbols,
            behind.as_millis() as u64,
        )]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SlowConsumerConfig {
        SlowConsumerConfig {
            blocked_write: Duration::from_millis(100),
            notice_after: Some(Duration::from_millis(1_000)),
            reduced_rate_hz: 1.0,
            recover_after: Duration::from_millis(2_000),
            max_recover_after: Duration::from_millis(30_000),
            close_after: Some(Duration::from_millis(5_000)),
        }
    }

    #[test]
    fn quick_writes_never_leave_step_one() {
        let mut ladder = Ladder::new(&config());
        let t0 = Instant::now();
        for i in 0..1_000u64 {
            let at = t0 + Duration::from_millis(i * 10);
            ladder.observe_write(at, at + Duration::from_millis(5));
            assert_eq!(ladder.poll(at + Duration::from_millis(6), None), Step::Stay);
        }
        assert!(!ladder.is_behind());
    }

    #[test]
    fn a_persistent_backlog_slows_then_closes_and_a_recovery_restores() {
        let mut ladder = Ladder::new(&config());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        ladder.observe_write(t0, t0 + ms(300));
        assert!(ladder.is_behind());
        assert_eq!(ladder.poll(t0 + ms(900), None), Step::Stay);
        // Still blocking now and then: the first notice at 1 s, the next
        // class at 2 s.
        ladder.observe_write(t0 + ms(900), t0 + ms(1_050));
        assert_eq!(ladder.poll(t0 + ms(1_050), None), Step::SlowDown);
        assert_eq!(ladder.poll(t0 + ms(1_100), None), Step::Stay);
        assert_eq!(ladder.next_deadline(t0 + ms(1_900)), Some(t0 + ms(2_000)));
        assert_eq!(
            ladder.poll(t0 + ms(2_000), Some(t0 + ms(1_900))),
            Step::SlowDown
        );
        // No blocked write since 2 s: still behind at 3 s, but nothing more
        // is slowed while writes go through; caught up at 4 s, which
        // restores full rate.
        assert_eq!(ladder.poll(t0 + ms(3_000), None), Step::Stay);
        assert_eq!(ladder.poll(t0 + ms(3_999), None), Step::Stay);
        assert_eq!(ladder.poll(t0 + ms(4_000), None), Step::Restore);
        assert!(!ladder.is_behind());
        // A fresh spell that never ends: a single write blocked for 5 s. It
        // slows one class; the others wait for a write begun since, which
        // never comes, and the close ends it.
        let t1 = t0 + ms(10_000);
        let mut steps = Vec::new();
        let mut now = t1;
        while let Some(at) = ladder.next_deadline(t1) {
            now = at;
            let step = ladder.poll(now, Some(t1));
            steps.push(step);
            if step == Step::Close {
                break;
            }
        }
        assert_eq!(steps, [Step::Stay, Step::SlowDown, Step::Close]);
        assert_eq!(now, t1 + ms(5_000));
    }

    #[test]
    fn zero_turns_notices_and_the_close_off() {
        let mut ladder = Ladder::new(&SlowConsumerConfig {
            notice_after: None,
            close_after: None,
            ..config()
        });
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(ladder.poll(t0 + ms(60_000), Some(t0)), Step::Stay);
        assert!(ladder.is_behind());
        assert_eq!(ladder.next_deadline(t0), None);
    }

    /// A write's start, length and the level (classes slowed) it ran at.
    type Held = (Instant, Duration, u32);

    /// A client that cannot take full rate but keeps up once its lowest
    /// class is slowed, driven the way the writer drives the ladder: at
    /// full rate every write blocks for `full_write`, slowed each takes
    /// 5 ms; the writer wakes 5 ms after each write. Returns the level (the
    /// classes slowed) held during each write, with its start and length,
    /// and the steps taken.
    fn drive(
        ladder: &mut Ladder,
        from: Instant,
        until: Instant,
        level: &mut u32,
        full_write: Duration,
    ) -> (Vec<Held>, Vec<(Instant, Step)>) {
        let ms = Duration::from_millis;
        let mut held = Vec::new();
        let mut steps = Vec::new();
        let mut apply = |step: Step, at: Instant, level: &mut u32| {
            match step {
                Step::SlowDown => *level += 1,
                Step::Restore => *level = 0,
                Step::Stay | Step::Close => {}
            }
            if step != Step::Stay {
                steps.push((at, step));
            }
        };
        let mut now = from;
        while now < until {
            if ladder.is_behind() {
                apply(ladder.poll(now, None), now, level);
            }
            let started = now;
            let took = if *level == 0 { full_write } else { ms(5) };
            let end = started + took;
            held.push((started, took, *level));
            while let Some(at) = ladder.next_deadline(started).filter(|at| *at < end) {
                apply(ladder.poll(at, Some(started)), at, level);
            }
            ladder.observe_write(started, end);
            now = end + ms(5);
        }
        (held, steps)
    }

    /// Time spent writing at full rate (level 0) within `[from, to)`.
    fn at_full_rate(held: &[Held], from: Instant) -> Duration {
        held.iter()
            .filter(|(at, _, level)| *at >= from && *level == 0)
            .map(|(_, took, _)| *took)
            .sum()
    }

    #[test]
    fn sustained_pressure_keeps_a_client_in_its_step_instead_of_flapping() {
        let mut ladder = Ladder::new(&config());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut level = 0;
        let (held, steps) = drive(&mut ladder, t0, t0 + ms(120_000), &mut level, ms(150));
        let first_slow = steps
            .iter()
            .find(|(_, step)| *step == Step::SlowDown)
            .expect("slowed")
            .0;
        assert!(
            first_slow <= t0 + ms(1_200),
            "slowed at {:?}",
            first_slow - t0
        );
        let restores = steps.iter().filter(|(_, s)| *s == Step::Restore).count();
        // Probes at 2 s, 4 s, 8 s, 16 s, then every 30 s: not one every
        // 3 s as a fixed window gives.
        assert!(
            (1..=7).contains(&restores),
            "{restores} restores in 120 s: {steps:?}"
        );
        // Each probe costs one blocked write: the client spends almost all
        // of the two minutes in its step.
        let full = at_full_rate(&held, first_slow);
        assert!(
            full <= ms(1_500),
            "{full:?} at full rate after the slow-down"
        );
        // Slowing the lowest class was enough: the next one (visible
        // symbols) was never slowed.
        assert!(held.iter().all(|(_, _, level)| *level <= 1), "{steps:?}");
        // Each relapse went straight back to the step it left.
        for pair in steps.windows(2) {
            if let [(restored, Step::Restore), (slowed, Step::SlowDown)] = pair {
                assert!(*slowed - *restored <= ms(200), "{steps:?}");
            }
        }
    }

    #[test]
    fn a_genuine_recovery_restores_and_a_later_spell_starts_afresh() {
        let mut ladder = Ladder::new(&config());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut level = 0;
        let t1 = t0 + ms(60_000);
        drive(&mut ladder, t0, t1, &mut level, ms(150));
        assert_eq!(level, 1, "held in its step under pressure");
        assert!(ladder.recover_window() > ms(2_000));
        // The client now reads fast: even full-rate writes take 5 ms.
        let t2 = t1 + ms(40_000);
        let (_, steps) = drive(&mut ladder, t1, t2, &mut level, ms(5));
        let restored = steps
            .iter()
            .find(|(_, step)| *step == Step::Restore)
            .expect("restored after catching up")
            .0;
        assert!(
            restored - t1 <= ms(30_200),
            "restored after {:?}",
            restored - t1
        );
        assert_eq!(level, 0);
        assert_eq!(
            steps.iter().filter(|(_, s)| *s != Step::Restore).count(),
            0,
            "{steps:?}"
        );
        // Pressure again, long after: the first window is the base one.
        let t3 = t2 + ms(10_000);
        let (_, steps) = drive(&mut ladder, t3, t3 + ms(1_500), &mut level, ms(150));
        assert!(ladder.is_behind());
        assert_eq!(ladder.recover_window(), ms(2_000), "{steps:?}");
        let (_, steps) = drive(
            &mut ladder,
            t3 + ms(1_500),
            t3 + ms(6_000),
            &mut level,
            ms(150),
        );
        let restore = steps
            .iter()
            .find(|(_, step)| *step == Step::Restore)
            .expect("a probe after the base window")
            .0;
        assert!(restore - t3 <= ms(3_300), "{:?}", restore - t3);
    }

    /// A mailbox holding `BG` (background) and `VIS` (visible).
    fn ranked_mailbox(store: &crate::fanout::store::SnapshotStore) -> std::sync::Arc<Mailbox> {
        use crate::fanout::{Delivery, Priority};
        let mailbox = std::sync::Arc::new(Mailbox::new(1, 16, std::time::Instant::now()));
        for (symbol, priority) in [("BG", Priority::Background), ("VIS", Priority::Visible)] {
            let delivery = Delivery {
                priority: Some(priority),
                ..Delivery::default()
            };
            let symbol = tickgate_feeds::Symbol::parse(symbol).expect("symbol");
            // Published by a feed: client-named symbols alone take no slot.
            store.get_or_create(symbol).expect("room");
            crate::fanout::subscriptions::subscribe(
                store,
                &mailbox,
                &[symbol],
                crate::fanout::subscriptions::SubscribeLimits {
                    per_connection: 10,
                    interest: 10,
                },
                delivery,
                &Default::default(),
                |_| Vec::new(),
            );
        }
        mailbox
    }

    fn notices(mailbox: &Mailbox, now: Instant) -> Vec<serde_json::Value> {
        mailbox
            .drain(now)
            .control
            .iter()
            .map(|frame| serde_json::from_str(frame).expect("json"))
            .collect()
    }

    #[test]
    fn climb_tells_the_client_what_it_slowed_restores_and_finally_closes() {
        let store = crate::fanout::store::SnapshotStore::new(10);
        let mailbox = ranked_mailbox(&store);
        let mut ladder = Ladder::new(&config());
        let t0 = Instant::now();
        let ms = Duration::from_millis;

        // A write blocked past notice_after: background symbols slow first.
        assert_eq!(
            climb(&mut ladder, t0 + ms(1_000), Some(t0), &mailbox, 2.0),
            None
        );
        let sent = notices(&mailbox, t0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["type"], "slow");
        assert_eq!(sent[0]["state"], "slowed");
        assert_eq!(sent[0]["priority"], "background");
        assert_eq!(sent[0]["symbols"], serde_json::json!(["BG"]));
        assert_eq!(sent[0]["rate_hz"], 2.0);
        assert_eq!(mailbox.stats.ladder_level.load(Ordering::Relaxed), 1);

        // The write goes through; no blocked write for recover_after.
        ladder.observe_write(t0, t0 + ms(1_500));
        assert_eq!(
            climb(&mut ladder, t0 + ms(3_500), None, &mailbox, 2.0),
            None
        );
        let sent = notices(&mailbox, t0);
        assert_eq!(sent[0]["state"], "restored");
        assert_eq!(mailbox.stats.ladder_level.load(Ordering::Relaxed), 0);

        // A write stuck for close_after ends the connection.
        let t1 = t0 + ms(10_000);
        assert_eq!(
            climb(&mut ladder, t1 + ms(5_000), Some(t1), &mailbox, 2.0),
            Some(CloseReason::SlowConsumer)
        );
    }
}
