//! NATS protocol messages inside the WebSocket byte stream: `MSG` with its
//! payload, `PING`, `PONG` and `-ERR`. A message cut by a frame boundary
//! stays in the buffer for the next read.

/// One server message the client acts on; others (`INFO`, `+OK`) are skipped.
pub(super) enum NatsMessage<'a> {
    /// A `MSG`'s payload: one quote from the feed.
    Msg(&'a [u8]),
    /// The server's keepalive, answered with `PONG`.
    Ping,
    /// The answer to the `PING` after the `SUB`s: every one is registered.
    Pong,
    /// `-ERR`: counted as a server error.
    Err,
}

/// Parses complete NATS protocol messages from `buf`; returns bytes consumed.
pub(super) fn nats_messages<'a>(buf: &'a [u8], mut each: impl FnMut(NatsMessage<'a>)) -> usize {
    let mut pos = 0;
    while let Some(eol) = crate::loadtest::ws::find(&buf[pos..], b"\r\n") {
        let line = &buf[pos..pos + eol];
        if line.starts_with(b"MSG ") {
            let len: usize = line
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let start = pos + eol + 2;
            if buf.len() < start + len + 2 {
                break;
            }
            each(NatsMessage::Msg(&buf[start..start + len]));
            pos = start + len + 2;
            continue;
        }
        if line.starts_with(b"PING") {
            each(NatsMessage::Ping);
        } else if line.starts_with(b"PONG") {
            each(NatsMessage::Pong);
        } else if line.starts_with(b"-ERR") {
            each(NatsMessage::Err);
        }
        pos += eol + 2;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_parser_keeps_partial_messages_for_the_next_read() {
        let buf = b"INFO {}\r\nMSG md.A 1 5\r\nhello\r\nPING\r\nMSG md.B 2 10\r\nabc";
        let mut seen = Vec::new();
        let consumed = nats_messages(buf, |m| match m {
            NatsMessage::Msg(p) => seen.push(String::from_utf8_lossy(p).into_owned()),
            NatsMessage::Ping => seen.push("PING".into()),
            _ => {}
        });
        assert_eq!(seen, ["hello", "PING"]);
        assert_eq!(&buf[consumed..], b"MSG md.B 2 10\r\nabc");
    }

    #[test]
    fn nats_control_lines_are_told_apart() {
        let buf = b"+OK\r\nPONG\r\n-ERR 'Unknown Protocol Operation'\r\nMSG md.A 1 0\r\n\r\n";
        let mut seen = Vec::new();
        let consumed = nats_messages(buf, |m| {
            seen.push(match m {
                NatsMessage::Msg(p) => format!("MSG {}", p.len()),
                NatsMessage::Ping => "PING".into(),
                NatsMessage::Pong => "PONG".into(),
                NatsMessage::Err => "ERR".into(),
            });
        });
        assert_eq!(seen, ["PONG", "ERR", "MSG 0"]);
        assert_eq!(consumed, buf.len());
    }
}
