//! Upstream connections: bounded JSON lines over TCP (or a file), and
//! WebSocket over plain TCP or rustls (aws-lc-rs). Each yields one message
//! at a time into a reused buffer; every read is cancel-safe, so the runner
//! can race it against its staleness and shutdown timers.

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http::Uri};

/// What one read produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A message is in the buffer.
    Message,
    /// A message longer than the limit was skipped.
    Oversize(usize),
    /// Nothing for the parser (ping, pong, empty line).
    Control,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum End {
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream closed the connection in the middle of a message")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("websocket error: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
}

/// Reads `\n`-terminated lines of at most `max` bytes from any buffered
/// reader. A longer line is skipped to its end and reported once.
pub(crate) struct LineReader<R> {
    reader: R,
    max: usize,
    /// The current line; holds partial data across cancelled reads.
    pub(crate) line: Vec<u8>,
    /// Bytes of an oversize line skipped so far (`None` when not skipping).
    skipping: Option<usize>,
    complete: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            line: Vec::new(),
            skipping: None,
            complete: false,
        }
    }

    /// The next line (without `\n` / `\r\n`) into `self.line`.
    pub(crate) async fn next(&mut self) -> Result<Frame, End> {
        if self.complete {
            self.line.clear();
            self.complete = false;
        }
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return if self.line.is_empty() && self.skipping.is_none() {
                    Err(End::Closed)
                } else {
                    self.line.clear();
                    self.skipping = None;
                    Err(End::Truncated)
                };
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let chunk = &available[..newline.unwrap_or(available.len())];
            match self.skipping.as_mut() {
                Some(skipped) => *skipped += chunk.len(),
                None if self.line.len() + chunk.len() > self.max => {
                    self.skipping = Some(self.line.len() + chunk.len());
                    self.line.clear();
                }
                None => self.line.extend_from_slice(chunk),
            }
            self.reader.consume(take);
            if newline.is_some() {
                self.complete = true;
                if let Some(skipped) = self.skipping.take() {
                    return Ok(Frame::Oversize(skipped));
                }
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                if self.line.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Frame::Control);
                }
                return Ok(Frame::Message);
            }
        }
    }
}

/// Any byte stream a WebSocket can run over (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client WebSocket with its reused message buffer.
pub(crate) struct WsConnection {
    stream: WebSocketStream<Box<dyn Io>>,
    max: usize,
    pub(crate) buf: Vec<u8>,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("websocket handshake failed: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
}

/// Connects to a `ws://` or `wss://` URL and sends `handshake` messages.
/// Frames up to `4 × max` bytes are read (and those over `max` skipped and
/// reported); larger ones end the connection.
pub(crate) async fn connect_ws(
    url: &Uri,
    tls: Option<&Arc<ClientConfig>>,
    handshake: &[String],
    max: usize,
) -> Result<WsConnection, ConnectError> {
    let secure = url.scheme_str() == Some("wss");
    let host = url
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = match (secure, tls) {
        (true, Some(config)) => {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| ConnectError::ServerName(host.clone()))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            Box::new(connector.connect(name, tcp).await?)
        }
        _ => Box::new(tcp),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .max_message_size(Some(max.saturating_mul(4)))
        .max_frame_size(Some(max.saturating_mul(4)));
    let (mut stream, _response) =
        tokio_tungstenite::client_async_with_config(url.to_string(), io, Some(config)).await?;
    for message in handshake {
        stream.send(Message::text(message.as_str())).await?;
    }
    Ok(WsConnection {
        stream,
        max,
        buf: Vec::new(),
    })
}

impl WsConnection {
    /// The next data frame (text or binary) into `self.buf`.
    pub(crate) async fn next(&mut self) -> Result<Frame, End> {
        let message = match self.stream.next().await {
            None => return Err(End::Closed),
            Some(Err(error)) => return Err(End::Ws(error)),
            Some(Ok(message)) => message,
        };
        let payload: &[u8] = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            Message::Close(_) => return Err(End::Closed),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(Frame::Control),
        };
        if payload.len() > self.max {
            return Ok(Frame::Oversize(payload.len()));
        }
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        Ok(Frame::Message)
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls client config on the aws-lc-rs provider trusting the public web
/// roots plus every certificate in `ca_file`.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |message: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert)?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no certificates in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<(Frame, String), String>> {
        let reader = tokio::io::BufReader::with_capacity(8, input);
        let mut lines = LineReader::new(reader, max);
        let mut out = Vec::new();
        loop {
            match lines.next().await {
                Ok(frame) => out.push(Ok((frame, String::from_utf8_lossy(&lines.line).into()))),
                Err(End::Closed) => return out,
                Err(end) => {
                    out.push(Err(end.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_oversize_ones_skipped_whole() {
        let got = lines(b"{\"a\":1}\r\n\nthis line is far too long\nok\npartial", 10).await;
        assert_eq!(got[0], Ok((Frame::Message, "{\"a\":1}".into())));
        assert_eq!(got[1].as_ref().map(|(f, _)| f), Ok(&Frame::Control));
        assert_eq!(got[2].as_ref().map(|(f, _)| f), Ok(&Frame::Oversize(25)));
        assert_eq!(got[3], Ok((Frame::Message, "ok".into())));
        assert!(
            got[4]
                .as_ref()
                .is_err_and(|e| e.contains("middle of a message"))
        );
    }

    #[test]
    fn tls_config_refuses_a_missing_or_empty_ca_file() {
        assert!(tls_client_config(None).is_ok());
        let missing = tls_client_config(Some(Path::new("/nonexistent/ca.pem")));
        assert!(matches!(missing, Err(TlsSetupError::CaFile { .. })));
    }
}
