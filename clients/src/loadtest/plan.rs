//! Who each client is before it connects: its symbols, whether it stalls,
//! and the loopback address it connects from; and how many clients hold
//! each symbol, which the drain needs to know what "caught up" means.

use std::net::SocketAddr;

use super::LoadtestArgs;
use super::universe::Universe;

/// What one client does.
pub(crate) struct ClientPlan {
    /// Universe indexes, sorted.
    pub(crate) symbols: Vec<u32>,
    /// Stops reading for the configured stall.
    pub(crate) stalled: bool,
    /// Local address to connect from, or the kernel's choice.
    pub(crate) source: Option<std::net::IpAddr>,
}

/// One plan per client: every `1 / stall_share`-th client stalls.
pub(crate) fn plan_clients(
    args: &LoadtestArgs,
    universe: &Universe,
    target: SocketAddr,
) -> Vec<ClientPlan> {
    let stalled_every = if args.stall_share > 0.0 {
        (1.0 / args.stall_share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    (0..args.clients)
        .map(|i| ClientPlan {
            symbols: universe.choose(args.symbols_per_client, args.popularity, i as u64 + 1),
            stalled: stalled_every != usize::MAX && i % stalled_every == stalled_every - 1,
            source: loopback_source(target, i),
        })
        .collect()
}

/// Subscriptions per universe index.
pub(crate) fn count_per_symbol(plans: &[ClientPlan], n: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n];
    for plan in plans {
        for &s in &plan.symbols {
            counts[s as usize] += 1;
        }
    }
    counts
}

/// Loopback addresses the clients of a loopback target connect from. One
/// source address gives only ~28,000 ports, and the kernel's search for a
/// free one slows down as they fill: a reconnect storm of 10,000 clients
/// spent a quarter of the load tester's CPU there.
const LOOPBACK_SOURCES: usize = 250;

/// The source address of client `i`: spread over 127.0.0.2–127.0.0.251 when
/// the target is on IPv4 loopback, as clients from many hosts would be.
fn loopback_source(target: SocketAddr, i: usize) -> Option<std::net::IpAddr> {
    match target {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            Some(std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % LOOPBACK_SOURCES) as u8).into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:8080".parse().expect("address")
    }

    #[test]
    fn the_stall_share_picks_every_nth_client() {
        let universe = Universe::generated(10, 1.0);
        let args = LoadtestArgs::for_test(&["--clients", "8", "--stall-share", "0.25"]);
        let stalled: Vec<bool> = plan_clients(&args, &universe, local())
            .iter()
            .map(|p| p.stalled)
            .collect();
        assert_eq!(
            stalled,
            [false, false, false, true, false, false, false, true]
        );
        let args = LoadtestArgs::for_test(&["--clients", "8"]);
        assert!(
            plan_clients(&args, &universe, local())
                .iter()
                .all(|p| !p.stalled)
        );
    }

    #[test]
    fn each_client_holds_the_requested_number_of_symbols() {
        let universe = Universe::generated(10, 1.0);
        let args = LoadtestArgs::for_test(&["--clients", "5", "--symbols-per-client", "3"]);
        let plans = plan_clients(&args, &universe, local());
        assert_eq!(plans.len(), 5);
        assert!(plans.iter().all(|p| p.symbols.len() == 3));
        let counts = count_per_symbol(&plans, universe.len());
        assert_eq!(counts.len(), 10);
        assert_eq!(counts.iter().sum::<u64>(), 15);
    }

    #[test]
    fn subscriptions_are_counted_per_symbol() {
        let plan = |symbols: Vec<u32>| ClientPlan {
            symbols,
            stalled: false,
            source: None,
        };
        let plans = [plan(vec![0, 2]), plan(vec![2, 3]), plan(vec![])];
        assert_eq!(count_per_symbol(&plans, 5), [1, 0, 2, 1, 0]);
    }

    #[test]
    fn loopback_clients_come_from_many_loopback_addresses() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
        let local = local();
        let sources: std::collections::BTreeSet<_> = (0..1000)
            .filter_map(|i| loopback_source(local, i))
            .collect();
        assert_eq!(sources.len(), LOOPBACK_SOURCES);
        assert!(sources.iter().all(|ip| ip.is_loopback()));
        assert!(
            !sources.contains(&local.ip()),
            "never the target's own address"
        );
        // Anywhere else, the kernel picks the source as for any client.
        assert_eq!(loopback_source(addr("10.1.2.3:443"), 7), None);
        assert_eq!(loopback_source(addr("[::1]:443"), 7), None);
    }
}
