//! Stalled readers: clients that subscribe to a lot, then never read.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("stalled reader subscribed to everything", async move {
            let symbols = universe(60);
            let subscribe = json!({"op":"subscribe","symbols":symbols});
            // Never read; the watcher must not notice.
            stalled_reader(addr, &[subscribe], Duration::from_secs(2)).await;
        })
        .await;
    suite
        .attack(
            "stalled reader asking for every trade, ranked",
            async move {
                let symbols = universe(200);
                let requests = [
                    json!({"op":"subscribe","symbols":symbols,"trades":true,"priority":"visible"}),
                    json!({"op":"priority","background":symbols}),
                ];
                // Never read: trades pile up to the trade buffer, the ladder slows
                // the symbols; the watcher must not notice.
                stalled_reader(addr, &requests, Duration::from_secs(3)).await;
            },
        )
        .await;
}
