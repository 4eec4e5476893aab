//! A minimal WebSocket client for the load tester: the opening handshake,
//! unmasked server frames parsed in place from one growable read buffer, and
//! masked client frames.
//!
//! Kept deliberately small so the load generator is cheap per frame: no
//! per-frame allocation, no UTF-8 validation, one `read` fills as many frames
//! as the buffer holds. It trusts the server (this is a test client): a frame
//! larger than [`MAX_FRAME_BYTES`] is an error, fragmented messages are
//! reassembled into a second buffer.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream a client runs on: plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Largest server frame (or reassembled message) accepted.
pub(crate) const MAX_FRAME_BYTES: usize = 16 << 20;

/// Why a connection failed; the label is reported as an error kind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("handshake refused: {0}")]
    Handshake(String),
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("closed by the server with code {0}")]
    Closed(u16),
    #[error("connection ended")]
    Eof,
}

impl WsError {
    /// Stable label for the report.
    pub(crate) fn kind(&self) -> String {
        match self {
            Self::Io(e) => format!("io_{:?}", e.kind()).to_lowercase(),
            Self::Handshake(_) => "handshake_refused".into(),
            Self::Protocol(_) => "protocol_error".into(),
            Self::Closed(code) => format!("closed_{code}"),
            Self::Eof => "eof".into(),
        }
    }
}

/// A WebSocket message as the caller sees it.
pub(crate) enum Frame<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Close(u16),
}

/// One client connection.
pub(crate) struct WsClient<S> {
    stream: S,
    /// Bytes read, `buf[start..end]` not yet parsed. Starts small, grows to
    /// the largest frame seen.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Reassembly of fragmented messages (empty unless the server fragments).
    partial: Vec<u8>,
    partial_opcode: u8,
    write_buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Performs the opening handshake on `stream`.
    pub(crate) async fn connect(
        mut stream: S,
        host: &str,
        path: &str,
        token: Option<&str>,
        subprotocol: Option<&str>,
        read_buffer: usize,
    ) -> Result<Self, WsError> {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let protocol = subprotocol.map_or(String::new(), |p| {
            format!("Sec-WebSocket-Protocol: {p}\r\n")
        });
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}{protocol}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; read_buffer.max(1024)];
        let mut end = 0;
        let header_end = loop {
            if end == buf.len() {
                return Err(WsError::Handshake("response headers too long".into()));
            }
            let n = stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err(WsError::Eof);
            }
            end += n;
            if let Some(pos) = find(&buf[..end], b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let status_line = buf[..header_end]
            .split(|&b| b == b'\r')
            .next()
            .unwrap_or_default();
        if !status_line.starts_with(b"HTTP/1.1 101") {
            return Err(WsError::Handshake(
                String::from_utf8_lossy(status_line).into_owned(),
            ));
        }
        if let Some(protocol) = subprotocol {
            let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
            let chosen = format!("sec-websocket-protocol: {}", protocol.to_ascii_lowercase());
            if !head.contains(&chosen) {
                return Err(WsError::Handshake(format!(
                    "the server did not accept the subprotocol {protocol}"
                )));
            }
        }
        Ok(Self {
            stream,
            buf,
            start: header_end,
            end,
            partial: Vec::new(),
            partial_opcode: 0,
            write_buf: Vec::with_capacity(256),
        })
    }

    /// Sends one masked frame (`opcode` 1 = text, 2 = binary, 8 = close, 10 = pong).
    pub(crate) async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), WsError> {
        const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let w = &mut self.write_buf;
        w.clear();
        w.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            w.push(0x80 | len as u8);
        } else if len <= 0xffff {
            w.push(0x80 | 126);
            w.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            w.push(0x80 | 127);
            w.extend_from_slice(&(len as u64).to_be_bytes());
        }
        w.extend_from_slice(&MASK);
        w.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        self.stream.write_all(w).await?;
        Ok(())
    }

    /// Waits until at least one more frame is buffered (reading from the
    /// socket as needed).
    pub(crate) async fn fill(&mut self) -> Result<(), WsError> {
        let need = match frame_len(&self.buf[self.start..self.end]) {
            Some(Ok(len)) if len <= self.end - self.start => return Ok(()),
            Some(Ok(len)) => len,
            Some(Err(e)) => return Err(WsError::Protocol(e)),
            None => 14,
        };
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        loop {
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(WsError::Eof);
            }
            self.end += n;
            match frame_len(&self.buf[..self.end]) {
                Some(Ok(len)) if len <= self.end => return Ok(()),
                Some(Ok(len)) if len > self.buf.len() => self.buf.resize(len, 0),
                Some(Err(e)) => return Err(WsError::Protocol(e)),
                _ => {}
            }
        }
    }

    /// The next complete buffered message, if any (no I/O). Control frames
    /// are returned as they come; fragments are reassembled.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WsError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let Some(len) = frame_len(avail) else {
                return Ok(None);
            };
            let len = len.map_err(WsError::Protocol)?;
            if len > avail.len() {
                return Ok(None);
            }
            let head = avail[0];
            let fin = head & 0x80 != 0;
            let opcode = head & 0x0f;
            let payload_start = self.start + header_len(avail[1]);
            let payload_end = self.start + len;
            self.start += len;
            if self.start == self.end {
                // Everything consumed: the next read starts at the front.
                self.start = 0;
                self.end = 0;
            }
            // The bytes stay valid until the next `fill`: resetting the
            // indices does not touch them.
            let payload = payload_start..payload_end;
            match (opcode, fin) {
                (1 | 2, true) => {
                    let bytes = &self.buf[payload];
                    return Ok(Some(if opcode == 1 {
                        Frame::Text(bytes)
                    } else {
                        Frame::Binary(bytes)
                    }));
                }
                (1 | 2, false) => {
                    self.partial.clear();
                    self.partial.extend_from_slice(&self.buf[payload]);
                    self.partial_opcode = opcode;
                }
                (0, _) => {
                    if self.partial.len() + payload.len() > MAX_FRAME_BYTES {
                        return Err(WsError::Protocol("fragmented message too large"));
                    }
                    self.partial.extend_from_slice(&self.buf[payload]);
                    if fin {
                        let bytes = &self.partial[..];
                        return Ok(Some(if self.partial_opcode == 1 {
                            Frame::Text(bytes)
                        } else {
                            Frame::Binary(bytes)
                        }));
                    }
                }
                (8, _) => {
                    let p = &self.buf[payload];
                    let code = if p.len() >= 2 {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        1005
                    };
                    return Ok(Some(Frame::Close(code)));
                }
                (9, _) => return Ok(Some(Frame::Ping(&self.buf[payload]))),
                (10, _) => {}
                _ => return Err(WsError::Protocol("unknown opcode")),
            }
        }
    }

    /// Sends a close frame and flushes; errors are ignored (the peer may be gone).
    pub(crate) async fn close(&mut self, code: u16) {
        let _ = self.send(8, &code.to_be_bytes()).await;
        let _ = self.stream.flush().await;
    }
}

fn header_len(second: u8) -> usize {
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    match second & 0x7f {
        126 => 4 + mask,
        127 => 10 + mask,
        _ => 2 + mask,
    }
}

/// Total length of the frame at the start of `b` (header + payload), `None`
/// when not even the header is buffered.
fn frame_len(b: &[u8]) -> Option<Result<usize, &'static str>> {
    if b.len() < 2 {
        return None;
    }
    let header = header_len(b[1]);
    if b.len() < header {
        return None;
    }
    let payload = match b[1] & 0x7f {
        126 => u16::from_be_bytes([b[2], b[3]]) as usize,
        127 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX)
        }
        n => n as usize,
    };
    if payload > MAX_FRAME_BYTES {
        return Some(Err("frame too large"));
    }
    if b[1] & 0x80 != 0 {
        return Some(Err("server frames must not be masked"));
    }
    Some(Ok(header + payload))
}

/// Position of `needle` in `hay` (SIMD substring search).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_cover_the_three_size_forms() {
        assert_eq!(frame_len(&[0x81]), None);
        assert_eq!(frame_len(&[0x81, 5]), Some(Ok(7)));
        assert_eq!(frame_len(&[0x81, 126, 1, 0]), Some(Ok(4 + 256)));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(frame_len(&long), Some(Ok(10 + 70_000)));
        assert!(frame_len(&[0x81, 0x85]).is_none());
    }
}
