//! The history checker: judges what each client was shown against what the
//! feeds really sent. Pure: no sockets, no clock, no async. The fault
//! harness (tests/faults.rs) records every frame each client receives, with
//! its receive time since the run started, and the ground truth of the run;
//! [`check`] returns every broken rule it finds.
//!
//! The rules (docs/faults.md):
//! 1. `seq` never decreases for a symbol within one epoch, and one seq of an
//!    epoch names one value.
//! 2. No value older than one already shown: the feeds' own order of a
//!    symbol's values is the `bid`, which the harness makes grow by one per
//!    tick, so a client must never be shown a smaller `bid` after a larger one.
//! 3. After the faults heal, every client holds the feed's last value of
//!    every symbol, shown within [`Bounds::converge`] of it being sent.
//! 4. `live` within [`Bounds::live`] after data resumes; `stale` or `down`
//!    within the outage's window (`staleness_ms` for a silence, 0 for a
//!    drop) plus [`Bounds::status`] while the feed is away.
//! 5. A resume never leaves a changed value: a `resumed:true` snapshot may
//!    omit a symbol only when the value the client holds is the gateway's.
//!
//! Time a client could not read (stalled, or reconnecting) pushes its
//! deadlines back: a deadline falling in such a window moves to the window's
//! end plus the bound.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// One thing a client did or saw, at `at` since the run started.
#[derive(Clone, Debug)]
pub enum Event {
    /// A frame the client sent (its `subscribe`, with or without `resume`).
    Sent { at: Duration, frame: Value },
    /// A frame the client received, in receive order.
    Received { at: Duration, frame: Value },
}

/// Everything one client recorded, and when it could not read.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// `(from, to)`: the client was stalled or reconnecting.
    pub blind: Vec<(Duration, Duration)>,
}

/// A stretch of time the listed symbols had no data from any feed.
#[derive(Clone, Debug)]
pub struct Outage {
    pub symbols: Vec<String>,
    pub from: Duration,
    /// When data for them was sent again.
    pub to: Duration,
    /// How long the gateway may take by design to notice: `staleness_ms`
    /// for a silence, zero for a dropped connection.
    pub window: Duration,
}

/// A stretch of time when the feeds sent nothing and the gateway held
/// exactly `values`: a resume sent in it has a known right answer.
#[derive(Clone, Debug)]
pub struct Quiet {
    pub from: Duration,
    pub to: Duration,
    pub values: BTreeMap<String, f64>,
}

/// The ground truth of one run.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// The last value the feeds sent per symbol.
    pub last_values: BTreeMap<String, f64>,
    /// When the last values were sent (after every fault healed).
    pub last_sent_at: Duration,
    pub outages: Vec<Outage>,
    pub quiet: Vec<Quiet>,
}

/// How late a client may learn something; generous, because the run shares
/// a busy machine: these bound waiting, they do not measure speed.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub converge: Duration,
    pub live: Duration,
    pub status: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    SeqDecreased,
    OlderValue,
    NotConverged,
    LiveLate,
    StaleLate,
    ResumeLeftChanged,
}

/// One broken rule, with enough to find it in the history.
#[derive(Clone, Debug)]
pub struct Violation {
    pub client: usize,
    pub rule: Rule,
    pub at: Duration,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} at {:?}: {:?}: {}",
            self.client, self.at, self.rule, self.detail
        )
    }
}

/// Every broken rule in every client's history.
pub fn check(histories: &[History], truth: &Truth, bounds: Bounds) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (client, history) in histories.iter().enumerate() {
        let mut found = Vec::new();
        check_order(history, &mut found);
        check_convergence(history, truth, bounds, &mut found);
        check_status(history, truth, bounds, &mut found);
        check_resumes(history, truth, &mut found);
        violations.extend(found.into_iter().map(|(rule, at, detail)| Violation {
            client,
            rule,
            at,
            detail,
        }));
    }
    violations
}

type Found = Vec<(Rule, Duration, String)>;

/// (symbol, seq, value) of every quote in a snapshot or update frame.
pub fn quotes_of(frame: &Value) -> Vec<(String, u64, f64)> {
    if frame["type"] != "snapshot" && frame["type"] != "update" {
        return Vec::new();
    }
    frame["quotes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            Some((
                q["symbol"].as_str()?.to_owned(),
                q["seq"].as_u64()?,
                q["bid"].as_f64()?,
            ))
        })
        .collect()
}

fn received(history: &History) -> impl Iterator<Item = (Duration, &Value)> {
    history.events.iter().filter_map(|event| match event {
        Event::Received { at, frame } => Some((*at, frame)),
        Event::Sent { .. } => None,
    })
}

/// Rules 1 and 2.
fn check_order(history: &History, found: &mut Found) {
    let mut epoch = String::new();
    let mut seqs: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    let mut shown: BTreeMap<String, f64> = BTreeMap::new();
    for (at, frame) in received(history) {
        if frame["type"] == "subscribed" {
            epoch = frame["epoch"].as_str().unwrap_or_default().to_owned();
        }
        for (symbol, seq, value) in quotes_of(frame) {
            let key = (epoch.clone(), symbol.clone());
            if let Some(&(last_seq, last_value)) = seqs.get(&key) {
                if seq < last_seq || (seq == last_seq && value != last_value) {
                    found.push((
                        Rule::SeqDecreased,
                        at,
                        format!(
                            "{symbol} seq {seq} (value {value}) after seq {last_seq} (value {last_value}) in epoch {epoch:?}"
                        ),
                    ));
                }
            }
            seqs.insert(key, (seq, value));
            let newest = shown.entry(symbol.clone()).or_insert(value);
            if value < *newest {
                found.push((
                    Rule::OlderValue,
                    at,
                    format!("{symbol} value {value} after {newest} was shown"),
                ));
            } else {
                *newest = value;
            }
        }
    }
}

/// Rule 3.
fn check_convergence(history: &History, truth: &Truth, bounds: Bounds, found: &mut Found) {
    let deadline = deadline(history, truth.last_sent_at, bounds.converge);
    for (symbol, &last) in &truth.last_values {
        let shown_at = received(history)
            .filter(|(at, _)| *at >= truth.last_sent_at)
            .find(|(_, frame)| {
                quotes_of(frame)
                    .iter()
                    .any(|(s, _, value)| s == symbol && *value == last)
            })
            .map(|(at, _)| at);
        let held = received(history)
            .flat_map(|(_, frame)| quotes_of(frame))
            .filter(|(s, _, _)| s == symbol)
            .last()
            .map(|(_, _, value)| value);
        match shown_at {
            Some(at) if at <= deadline && held == Some(last) => {}
            Some(at) if at <= deadline => found.push((
                Rule::NotConverged,
                at,
                format!("{symbol} ends on {held:?}, not the feed's last value {last}"),
            )),
            Some(at) => found.push((
                Rule::NotConverged,
                at,
                format!("{symbol} reached {last} only at {at:?}, deadline {deadline:?}"),
            )),
            None => found.push((
                Rule::NotConverged,
                deadline,
                format!("{symbol} never shown the feed's last value {last} (holds {held:?})"),
            )),
        }
    }
}

/// Rule 4: what the client believes about `symbol` from the frames it
/// received up to `until`: `live` unless the last word was another state.
pub fn belief(history: &History, symbol: &str, until: Duration) -> String {
    let mut state = "live".to_owned();
    for (_, frame) in received(history).take_while(|(at, _)| *at <= until) {
        let names = |key: &str| {
            frame[key]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s == symbol)
        };
        if frame["type"] == "subscribed" && names("symbols") {
            state = "live".to_owned();
        }
        if frame["type"] == "status" && names("symbols") {
            state = frame["state"].as_str().unwrap_or_default().to_owned();
        }
    }
    state
}

fn check_status(history: &History, truth: &Truth, bounds: Bounds, found: &mut Found) {
    for outage in &truth.outages {
        let noticed_by = deadline(history, outage.from + outage.window, bounds.status);
        let live_by = deadline(history, outage.to, bounds.live);
        for symbol in &outage.symbols {
            if outage.to > noticed_by {
                let state = belief(history, symbol, noticed_by);
                if state == "live" {
                    found.push((
                        Rule::StaleLate,
                        noticed_by,
                        format!(
                            "{symbol} still live at {noticed_by:?}, silent since {:?}",
                            outage.from
                        ),
                    ));
                }
            }
            // Only an outage the client was told about must be undone, and
            // only if no later outage began before the deadline.
            let later = truth
                .outages
                .iter()
                .any(|o| o.from > outage.from && o.from <= live_by && o.symbols.contains(symbol));
            let told = received(history).any(|(at, frame)| {
                at >= outage.from
                    && at <= live_by
                    && frame["type"] == "status"
                    && frame["state"] != "live"
                    && frame["symbols"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|n| n == symbol.as_str()))
            });
            if told && !later {
                let state = belief(history, symbol, live_by);
                if state != "live" {
                    found.push((
                        Rule::LiveLate,
                        live_by,
                        format!(
                            "{symbol} still {state} at {live_by:?}, data resumed at {:?}",
                            outage.to
                        ),
                    ));
                }
            }
        }
    }
}

/// Rule 5.
fn check_resumes(history: &History, truth: &Truth, found: &mut Found) {
    let mut held: BTreeMap<String, f64> = BTreeMap::new();
    let mut pending: Option<(Duration, Vec<String>)> = None;
    for event in &history.events {
        match event {
            Event::Sent { at, frame } => {
                let Some(resume) = frame["resume"].as_object() else {
                    continue;
                };
                pending = Some((*at, resume.keys().cloned().collect()));
            }
            Event::Received { at, frame } => {
                if frame["type"] == "snapshot" {
                    if let Some((sent_at, symbols)) = pending.take() {
                        let quiet = truth
                            .quiet
                            .iter()
                            .find(|q| q.from <= sent_at && *at <= q.to);
                        if let Some(quiet) = quiet {
                            let listed: Vec<String> =
                                quotes_of(frame).into_iter().map(|(s, _, _)| s).collect();
                            for symbol in symbols.iter().filter(|s| !listed.contains(s)) {
                                let now = quiet.values.get(symbol);
                                if held.get(symbol) != now {
                                    found.push((
                                        Rule::ResumeLeftChanged,
                                        *at,
                                        format!(
                                            "{symbol} left out of the resume snapshot, client holds {:?}, gateway has {now:?}",
                                            held.get(symbol)
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                }
                for (symbol, _, value) in quotes_of(frame) {
                    held.insert(symbol, value);
                }
            }
        }
    }
}

/// `from + bound`, pushed back past every blind window it falls in.
fn deadline(history: &History, from: Duration, bound: Duration) -> Duration {
    let mut deadline = from + bound;
    let mut moved = true;
    while moved {
        moved = false;
        for &(start, end) in &history.blind {
            if start <= deadline && end >= from && end + bound > deadline {
                deadline = end + bound;
                moved = true;
            }
        }
    }
    deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const BOUNDS: Bounds = Bounds {
        converge: Duration::from_millis(1000),
        live: Duration::from_millis(1000),
        status: Duration::from_millis(1000),
    };

    fn got(at: u64, frame: Value) -> Event {
        Event::Received { at: ms(at), frame }
    }

    fn subscribed(at: u64, epoch: &str) -> Event {
        got(
            at,
            json!({"type": "subscribed", "symbols": ["AAA"], "epoch": epoch}),
        )
    }

    fn update(at: u64, seq: u64, bid: f64) -> Event {
        got(
            at,
            json!({"type": "update", "quotes": [{"symbol": "AAA", "seq": seq, "bid": bid}]}),
        )
    }

    fn status(at: u64, state: &str) -> Event {
        got(
            at,
            json!({"type": "status", "feed": "main", "state": state, "symbols": ["AAA"]}),
        )
    }

    fn truth(last: f64, last_sent_at: u64) -> Truth {
        Truth {
            last_values: BTreeMap::from([("AAA".to_owned(), last)]),
            last_sent_at: ms(last_sent_at),
            ..Truth::default()
        }
    }

    fn rules(events: Vec<Event>, truth: &Truth) -> Vec<Rule> {
        let history = History {
            events,
            blind: Vec::new(),
        };
        check(&[history], truth, BOUNDS)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let events = vec![subscribed(0, "e1"), update(10, 1, 1.0), update(20, 2, 2.0)];
        assert_eq!(rules(events, &truth(2.0, 15)), vec![]);
    }

    #[test]
    fn a_seq_going_back_within_an_epoch_is_rejected() {
        let events = vec![subscribed(0, "e1"), update(10, 5, 1.0), update(20, 4, 2.0)];
        assert_eq!(rules(events, &truth(2.0, 15)), vec![Rule::SeqDecreased]);
    }

    #[test]
    fn one_seq_naming_two_values_in_an_epoch_is_rejected() {
        let events = vec![subscribed(0, "e1"), update(10, 5, 1.0), update(20, 5, 2.0)];
        assert_eq!(rules(events, &truth(2.0, 15)), vec![Rule::SeqDecreased]);
    }

    #[test]
    fn a_seq_restarting_in_a_new_epoch_passes() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 5, 1.0),
            subscribed(20, "e2"),
            update(30, 1, 2.0),
        ];
        assert_eq!(rules(events, &truth(2.0, 25)), vec![]);
    }

    #[test]
    fn an_older_value_after_a_newer_one_is_rejected() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 3.0),
            subscribed(20, "e2"),
            update(30, 1, 2.0),
            update(40, 2, 4.0),
        ];
        assert_eq!(rules(events, &truth(4.0, 35)), vec![Rule::OlderValue]);
    }

    #[test]
    fn ending_on_an_old_value_is_rejected() {
        let events = vec![subscribed(0, "e1"), update(10, 1, 1.0)];
        assert_eq!(rules(events, &truth(2.0, 5)), vec![Rule::NotConverged]);
    }

    #[test]
    fn converging_too_late_is_rejected_unless_the_client_was_blind() {
        let events = vec![subscribed(0, "e1"), update(3000, 1, 1.0)];
        assert_eq!(
            rules(events.clone(), &truth(1.0, 10)),
            vec![Rule::NotConverged]
        );
        let blind = History {
            events,
            blind: vec![(ms(500), ms(2500))],
        };
        assert!(check(&[blind], &truth(1.0, 10), BOUNDS).is_empty());
    }

    fn outage(from: u64, to: u64, window: u64) -> Truth {
        Truth {
            outages: vec![Outage {
                symbols: vec!["AAA".to_owned()],
                from: ms(from),
                to: ms(to),
                window: ms(window),
            }],
            ..truth(2.0, to)
        }
    }

    #[test]
    fn an_outage_announced_and_healed_in_time_passes() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 1.0),
            status(2600, "stale"),
            status(5100, "live"),
            update(5110, 2, 2.0),
        ];
        assert_eq!(rules(events, &outage(100, 5000, 2000)), vec![]);
    }

    #[test]
    fn a_silence_never_announced_is_rejected() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 1.0),
            update(5110, 2, 2.0),
        ];
        assert_eq!(
            rules(events, &outage(100, 5000, 2000)),
            vec![Rule::StaleLate]
        );
    }

    #[test]
    fn a_stale_announced_after_its_window_and_bound_is_rejected() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 1.0),
            status(3500, "stale"),
            status(5100, "live"),
            update(5110, 2, 2.0),
        ];
        assert_eq!(
            rules(events, &outage(100, 5000, 2000)),
            vec![Rule::StaleLate]
        );
    }

    #[test]
    fn a_down_never_followed_by_live_is_rejected() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 1.0),
            status(200, "down"),
            update(5110, 2, 2.0),
        ];
        assert_eq!(rules(events, &outage(100, 5000, 0)), vec![Rule::LiveLate]);
    }

    fn resume(at: u64, seq: u64, epoch: &str) -> Event {
        Event::Sent {
            at: ms(at),
            frame: json!({"op": "subscribe", "symbols": ["AAA"], "resume": {"AAA": seq}, "epoch": epoch}),
        }
    }

    fn quiet(from: u64, to: u64, value: f64) -> Truth {
        Truth {
            quiet: vec![Quiet {
                from: ms(from),
                to: ms(to),
                values: BTreeMap::from([("AAA".to_owned(), value)]),
            }],
            ..truth(value, 0)
        }
    }

    #[test]
    fn a_resume_leaving_out_a_changed_value_is_rejected() {
        // A restarted gateway's seq 1 is another value than the old one's.
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 1.0),
            resume(100, 1, "e1"),
            subscribed(110, "e1"),
            got(
                120,
                json!({"type": "snapshot", "quotes": [], "resumed": true, "unchanged": 1}),
            ),
        ];
        let found = rules(events, &quiet(50, 200, 2.0));
        assert!(found.contains(&Rule::ResumeLeftChanged), "{found:?}");
    }

    #[test]
    fn a_resume_leaving_out_an_unchanged_value_passes() {
        let events = vec![
            subscribed(0, "e1"),
            update(10, 1, 2.0),
            resume(100, 1, "e1"),
            subscribed(110, "e1"),
            got(
                120,
                json!({"type": "snapshot", "quotes": [], "resumed": true, "unchanged": 1}),
            ),
        ];
        assert_eq!(rules(events, &quiet(50, 200, 2.0)), vec![]);
    }
}
