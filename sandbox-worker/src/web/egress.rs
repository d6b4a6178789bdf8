//! The egress proxy of the `egress` sandbox network mode: an HTTP(S) forward proxy the worker
//! serves on a Unix socket in each such container's run directory, the container's only way
//! out (it has no network; its agent relays `127.0.0.1:3128` here, `sandbox_agent::relay`).
//! Every request is decided by the same `EgressPolicy` as `web_fetch`: `CONNECT host:port` for
//! TLS (by host name; the TLS inside is not opened) and absolute-form `GET http://…` for plain
//! HTTP, the name checked against the domain lists, resolved once, every address checked, and
//! the connection made to the checked addresses. Each decision is logged; a refusal is a `403`
//! whose status line says why, which is what a command in the sandbox prints.
//!
//! Decisions:
//! - The proxy is the worker's, not a container of its own: no image to pull, and the policy
//!   and the tests' loopback exception are the ones the worker already holds.
//! - Only the ports in `tools.web.egressPorts` (default 80 and 443) are reached, as a proxy's
//!   `CONNECT` usually is limited: a sandbox cannot open mail, SSH or database connections to
//!   allowed hosts through it.
//! - One plain-HTTP request per connection (`Connection: close` is forced upstream), so a
//!   kept-alive connection cannot carry a second request to a host nobody checked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use super::guard::EgressPolicy;

/// The address the relay listens on inside the container (what `HTTP_PROXY` names).
pub const RELAY_ADDR: &str = "127.0.0.1:3128";
/// The longest request head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The worker's egress proxy: one listener per `egress` container's run directory.
pub struct EgressProxy {
    policy: Arc<EgressPolicy>,
    listening: Mutex<HashMap<PathBuf, tokio::task::JoinHandle<()>>>,
}

impl EgressProxy {
    pub fn new(policy: EgressPolicy) -> Self {
        EgressProxy {
            policy: Arc::new(policy),
            listening: Mutex::new(HashMap::new()),
        }
    }

    /// Serves the proxy at `socket` (the container's `egress.sock`) unless this worker already
    /// does; a socket left by another process (a worker before a restart) is replaced. The
    /// socket is handed to `owner`, the sandbox user its relay connects as.
    pub fn ensure_listening(
        &self,
        socket: &Path,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let mut listening = self.listening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = listening.get(socket) {
            if !task.is_finished() && is_socket(socket) {
                return Ok(());
            }
            task.abort();
        }
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        if let Some((uid, gid)) = owner {
            // `lchown`: the directory is the sandbox's to write, so by now the socket may be a
            // link it planted; following it would hand a host file to the sandbox user.
            std::os::unix::fs::lchown(socket, Some(uid), Some(gid))?;
        }
        let policy = self.policy.clone();
        let at = socket.display().to_string();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (policy, at) = (policy.clone(), at.clone());
                tokio::spawn(async move { serve(conn, &policy, &at).await });
            }
        });
        listening.insert(socket.to_path_buf(), task);
        Ok(())
    }
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// One proxied connection: read the request head, decide, connect, relay.
async fn serve(conn: UnixStream, policy: &EgressPolicy, at: &str) {
    let mut reader = BufReader::new(conn);
    let head = match read_head(&mut reader).await {
        Ok(head) => head,
        Err(why) => return refuse(reader.into_inner(), 400, &why).await,
    };
    let request = match Request::parse(&head) {
        Ok(request) => request,
        Err(why) => return refuse(reader.into_inner(), 400, &why).await,
    };
    let upstream = match connect(policy, &request.host, request.port).await {
        Ok(upstream) => upstream,
        Err(why) => {
            tracing::info!(sandbox = %at, host = %request.host, port = request.port, decision = "refused", %why, "egress");
            return refuse(reader.into_inner(), 403, &why).await;
        }
    };
    tracing::info!(sandbox = %at, host = %request.host, port = request.port, decision = "allowed", "egress");
    let leftover = reader.buffer().to_vec();
    let mut client = reader.into_inner();
    let mut upstream = upstream;
    let opened = if request.connect {
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
    } else {
        upstream.write_all(request.origin_head.as_bytes()).await
    };
    if opened.is_err() || upstream.write_all(&leftover).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The request head up to the blank line, at most [`MAX_HEAD_BYTES`].
async fn read_head(reader: &mut BufReader<UnixStream>) -> Result<String, String> {
    let mut head = Vec::new();
    let mut limited = reader.take(MAX_HEAD_BYTES as u64);
    loop {
        let before = head.len();
        let read = limited
            .read_until(b'\n', &mut head)
            .await
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the request head is incomplete or too long".into());
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
    }
    String::from_utf8(head).map_err(|_| "the request head is not text".into())
}

/// What a request asks the proxy for.
#[derive(Debug, PartialEq)]
struct Request {
    connect: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the head to send upstream (origin-form, no proxy headers, one request).
    origin_head: String,
}

impl Request {
    fn parse(head: &str) -> Result<Request, String> {
        let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
        let line = lines.next().unwrap_or_default();
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("not an HTTP request line: {line:?}"));
        };
        if method.eq_ignore_ascii_case("CONNECT") {
            let (host, port) = split_host_port(target, None)?;
            return Ok(Request {
                connect: true,
                host,
                port,
                origin_head: String::new(),
            });
        }
        let Some(rest) = target.strip_prefix("http://") else {
            return Err(format!(
                "{target:?}: the proxy takes CONNECT host:port (https) or an absolute http:// URL"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority, Some(80))?;
        let mut origin_head = format!("{method} {path} {version}\r\n");
        for header in lines.filter(|l| !l.is_empty()) {
            let name = header
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
                continue;
            }
            origin_head.push_str(header);
            origin_head.push_str("\r\n");
        }
        origin_head.push_str("Connection: close\r\n\r\n");
        Ok(Request {
            connect: false,
            host,
            port,
            origin_head,
        })
    }
}

/// `host:port` (brackets around an IPv6 address), `default` when no port is given.
fn split_host_port(authority: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("{authority:?} is not host:port");
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p.parse().map_err(|_| bad())?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// The policy's decision on `host`, then a connection to one of the addresses it checked.
async fn connect(policy: &EgressPolicy, host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => {
            policy.check_addr(host, ip).map_err(|e| e.to_string())?;
            policy.check_port(port, ip).map_err(|e| e.to_string())?;
            vec![SocketAddr::new(ip, port)]
        }
        Err(_) => {
            policy.check_host(host).map_err(|e| e.to_string())?;
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .collect();
            if found.is_empty() {
                return Err(format!("{host} does not resolve"));
            }
            for addr in &found {
                policy
                    .check_addr(host, addr.ip())
                    .map_err(|e| e.to_string())?;
                policy
                    .check_port(port, addr.ip())
                    .map_err(|e| e.to_string())?;
            }
            found
        }
    };
    let mut last = String::new();
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{host} ({addr}): {e}"),
        }
    }
    Err(last)
}

/// Answers with `status` and a one-line reason (in the status line too, which is what `curl`
/// and `wget` print).
async fn refuse(mut conn: UnixStream, status: u16, why: &str) {
    let reason: String = format!("clawgate egress: {why}")
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    let body = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_form_are_parsed_and_proxy_headers_dropped() {
        let connect =
            Request::parse("CONNECT Example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        let get = Request::parse(
            "GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: x\r\nConnection: keep-alive\r\n\r\n",
        );
        let origin = Request::parse("GET /relative HTTP/1.1\r\n\r\n");

        let connect = connect.unwrap();
        assert!(connect.connect);
        assert_eq!((connect.host.as_str(), connect.port), ("example.com", 443));
        let get = get.unwrap();
        assert_eq!((get.host.as_str(), get.port), ("example.com", 80));
        assert_eq!(
            get.origin_head,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        );
        assert!(origin.is_err());
        assert_eq!(
            split_host_port("[::1]:8080", None),
            Ok(("::1".into(), 8080))
        );
        assert!(split_host_port("example.com", None).is_err());
    }

    async fn proxy(policy: EgressPolicy) -> (tempfile::TempDir, PathBuf, EgressProxy) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("egress.sock");
        let proxy = EgressProxy::new(policy);
        proxy.ensure_listening(&socket, None).unwrap();
        (dir, socket, proxy)
    }

    async fn ask(socket: &Path, head: &str) -> (String, UnixStream) {
        let mut conn = UnixStream::connect(socket).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let mut rest = String::new();
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l).await.unwrap() == 0 || l == "\r\n" {
                break;
            }
            rest.push_str(&l);
        }
        (line, reader.into_inner())
    }

    #[tokio::test]
    async fn a_connect_to_an_allowed_host_is_relayed_and_the_metadata_address_is_refused() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut conn, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(&buf.to_ascii_uppercase()).await.unwrap();
        });
        let (_dir, socket, _proxy) = proxy(EgressPolicy {
            allow_loopback: true,
            deny_domains: vec!["denied.test".into()],
            ..Default::default()
        })
        .await;

        let (ok, mut tunnel) = ask(
            &socket,
            &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"),
        )
        .await;
        tunnel.write_all(b"hello").await.unwrap();
        let mut echoed = [0u8; 5];
        tunnel.read_exact(&mut echoed).await.unwrap();
        let (metadata, _) = ask(
            &socket,
            "GET http://169.254.169.254/latest/ HTTP/1.1\r\n\r\n",
        )
        .await;
        let (denied, _) = ask(&socket, "CONNECT denied.test:443 HTTP/1.1\r\n\r\n").await;

        assert_eq!(ok, "HTTP/1.1 200 Connection established\r\n");
        assert_eq!(&echoed, b"HELLO");
        assert!(
            metadata.starts_with("HTTP/1.1 403 clawgate egress:")
                && metadata.contains("169.254.169.254"),
            "{metadata}"
        );
        assert!(
            denied.starts_with("HTTP/1.1 403") && denied.contains("denyDomains"),
            "{denied}"
        );
    }

    #[tokio::test]
    async fn only_the_listed_ports_are_reached() {
        let (_dir, socket, _proxy) = proxy(EgressPolicy {
            allow_private: true,
            egress_ports: vec![443],
            ..Default::default()
        })
        .await;

        let (smtp, _) = ask(&socket, "CONNECT 10.0.0.7:25 HTTP/1.1\r\n\r\n").await;
        let (plain, _) = ask(&socket, "GET http://10.0.0.7/ HTTP/1.1\r\n\r\n").await;

        assert!(
            smtp.starts_with("HTTP/1.1 403") && smtp.contains("port 25"),
            "{smtp}"
        );
        assert!(plain.contains("port 80"), "{plain}");
    }

    #[tokio::test]
    async fn without_the_tests_exception_loopback_is_refused() {
        let (_dir, socket, _proxy) = proxy(EgressPolicy::default()).await;

        let (by_name, _) = ask(&socket, "CONNECT localhost:22 HTTP/1.1\r\n\r\n").await;
        let (garbage, _) = ask(&socket, "\r\n").await;

        assert!(
            by_name.starts_with("HTTP/1.1 403") && by_name.contains("refused"),
            "{by_name}"
        );
        assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    }
}
