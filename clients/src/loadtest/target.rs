//! The server under test: its `--url` parsed into an address to connect to,
//! the `Host` header and path of the opening handshake, and for `wss://` the
//! TLS connector and the name the certificate must carry.

use std::net::SocketAddr;

use anyhow::{Context, bail};

use super::args::UsageError;

/// Host, port and path of the server under test.
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// For `wss://`: the connector and the name the certificate must carry.
    pub(crate) tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    pub(crate) host: String,
    pub(crate) path: String,
}

/// `ws://host:port/path` → address, Host header, path.
pub(crate) async fn resolve(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<Target> {
    let Some(parts) = UrlParts::parse(url) else {
        bail!(UsageError(format!(
            "--url {url:?}: expected ws://HOST:PORT/PATH or wss://HOST:PORT/PATH"
        )));
    };
    let with_port = &parts.with_port;
    let addr = tokio::net::lookup_host(with_port)
        .await
        .with_context(|| format!("cannot resolve {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolves to no address"))?;
    let tls = if parts.tls {
        let config = tickgate_feeds::transport::tls_client_config(ca_file)
            .map_err(|e| UsageError(format!("--ca-file: {e}")))?;
        let name = rustls_pki_types::ServerName::try_from(parts.tls_name().to_owned())
            .map_err(|e| UsageError(format!("--url {url:?}: {e}")))?;
        Some((tokio_rustls::TlsConnector::from(config), name))
    } else {
        None
    };
    Ok(Target {
        addr,
        tls,
        host: parts.authority.to_owned(),
        path: parts.path,
    })
}

/// A `ws://` or `wss://` URL taken apart, before any name lookup.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts<'a> {
    tls: bool,
    /// As written in the URL: the `Host` header.
    authority: &'a str,
    /// `host:port`, with the scheme's default port when none is written.
    with_port: String,
    /// Starts with `/`.
    path: String,
}

impl<'a> UrlParts<'a> {
    /// `None` unless the scheme is `ws://` or `wss://`.
    fn parse(url: &'a str) -> Option<Self> {
        let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("wss://") {
            (rest, true, 443)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (rest, false, 80)
        } else {
            return None;
        };
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        };
        Some(Self {
            tls,
            authority,
            with_port,
            path,
        })
    }

    /// The host without port or IPv6 brackets: the name TLS checks.
    fn tls_name(&self) -> &str {
        self.with_port
            .rsplit_once(':')
            .map_or(self.with_port.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_host_header_port_and_path() {
        let parts = UrlParts::parse("ws://127.0.0.1:8080/ws").expect("ws url");
        assert_eq!(
            parts,
            UrlParts {
                tls: false,
                authority: "127.0.0.1:8080",
                with_port: "127.0.0.1:8080".to_owned(),
                path: "/ws".to_owned(),
            }
        );
    }

    #[test]
    fn a_missing_port_or_path_takes_the_scheme_default() {
        let plain = UrlParts::parse("ws://example.com").expect("ws url");
        assert_eq!(
            (plain.with_port.as_str(), plain.path.as_str()),
            ("example.com:80", "/")
        );
        assert_eq!(
            plain.authority, "example.com",
            "the Host header stays as written"
        );
        let secure = UrlParts::parse("wss://example.com/socket.io/?EIO=4").expect("wss url");
        assert!(secure.tls);
        assert_eq!(secure.with_port, "example.com:443");
        assert_eq!(secure.path, "/socket.io/?EIO=4");
    }

    #[test]
    fn tls_checks_the_bare_host_name() {
        let name = |url| UrlParts::parse(url).expect("wss url").tls_name().to_owned();
        assert_eq!(name("wss://localhost:8443/ws"), "localhost");
        assert_eq!(name("wss://[::1]:8443/ws"), "::1");
        assert_eq!(name("wss://example.com/ws"), "example.com");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert_eq!(UrlParts::parse("http://127.0.0.1:8080/ws"), None);
        assert_eq!(UrlParts::parse("127.0.0.1:8080"), None);
    }
}
