// Shared body of the parser targets: the input is split at newlines into
// messages fed, in order, to one decoder (so per-connection state such as
// Coinbase sequences is exercised), and every tick must carry a symbol.

use tickgate_feeds::parse::{Decoded, Decoder};

pub fn run(data: &[u8], make: impl Fn() -> Box<dyn Decoder>) {
    let mut decoder = make();
    let mut out = Decoded::default();
    for message in data.split(|&b| b == b'\n') {
        out.clear();
        decoder.decode(&mut message.to_vec(), &mut out);
        for tick in &out.ticks {
            assert!(tick.symbol.is_some(), "a tick without a symbol escaped");
        }
    }
    // The whole input as one message too.
    out.clear();
    decoder.decode(&mut data.to_vec(), &mut out);
}
