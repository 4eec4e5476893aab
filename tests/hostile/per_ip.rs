//! Connections per IP: the limit refuses with 429, and closed connections
//! give their places back.

use super::support::*;

pub async fn run(suite: &mut Suite) {
    let addr = suite.addr;
    suite
        .attack("many connections from one IP", async move {
            let mut held = Vec::new();
            let mut refused = None;
            for _ in 0..PER_IP + 5 {
                match Raw::open_with(
                    addr,
                    &format!("Authorization: Bearer {}\r\n", token(&["*"], 600)),
                )
                .await
                {
                    Ok(raw) => held.push(raw),
                    Err(status) => {
                        refused = Some(status);
                        break;
                    }
                }
            }
            assert_eq!(refused, Some(429), "held {}", held.len());
            assert!(held.len() < PER_IP, "the watcher holds one place too");
            // Closing them gives the places back.
            drop(held);
            wait_until("per-IP places come back", WAIT, || async {
                Raw::open_with(
                    addr,
                    &format!("Authorization: Bearer {}\r\n", token(&["*"], 600)),
                )
                .await
                .is_ok()
            })
            .await;
        })
        .await;
}
