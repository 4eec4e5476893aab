//! The attacks of the hostile suite, one module per kind of abuse; each
//! module's `run` plays all of its attacks against one [`support::Suite`].
#![allow(unreachable_pub)]

pub mod auth;
pub mod close;
pub mod floods;
pub mod handshake;
pub mod interest;
pub mod oversize;
pub mod per_ip;
pub mod protocol;
pub mod requests;
pub mod stalled;
pub mod support;
pub mod transport;
