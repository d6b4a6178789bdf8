//! The egress relay: in a container of the `egress` network mode (which has no network but its
//! own loopback), a TCP listener on `127.0.0.1:<port>` whose every connection is carried to the
//! worker's egress proxy over the Unix socket `egress.sock` in the mounted run directory. The
//! container's `HTTP_PROXY`/`HTTPS_PROXY` point here; the worker decides what may pass
//! (`sandbox-worker/src/web/egress.rs`), so nothing in the container can reach anything else.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The environment variable that turns the relay on, holding the address it listens on.
pub const RELAY_VAR: &str = "CLAWGATE_EGRESS_RELAY";
/// The worker's proxy socket, in the run directory.
pub const EGRESS_SOCKET_NAME: &str = "egress.sock";

/// Listens on `addr` and relays each connection to `socket`, a thread pair per connection,
/// until the listener fails.
pub fn serve(addr: &str, socket: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    for incoming in listener.incoming() {
        let Ok(client) = incoming else { continue };
        let socket = socket.clone();
        std::thread::spawn(move || relay(client, &socket));
    }
    Ok(())
}

/// Carries bytes both ways between `client` and the proxy until either side closes. A proxy
/// that is not there closes the client at once (its request fails, nothing else is tried).
fn relay(client: TcpStream, socket: &Path) {
    let Ok(proxy) = UnixStream::connect(socket) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_read), Ok(proxy_write)) = (client.try_clone(), proxy.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        copy(client_read, proxy_write, |w| {
            let _ = w.shutdown(Shutdown::Write);
        })
    });
    copy(proxy, client, |w| {
        let _ = w.shutdown(Shutdown::Write);
    });
    let _ = upstream.join();
}

fn copy<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W)) {
    let _ = std::io::copy(&mut from, &mut to);
    close(&to);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_connection_is_carried_to_the_proxy_socket_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(EGRESS_SOCKET_NAME);
        let proxy = UnixListener::bind(&socket).unwrap();
        // A proxy that answers each line with it upper-cased.
        std::thread::spawn(move || {
            let (conn, _) = proxy.accept().unwrap();
            let mut lines = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            lines.read_line(&mut line).unwrap();
            (&conn).write_all(line.to_uppercase().as_bytes()).unwrap();
        });
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let listen = addr.clone();
        std::thread::spawn(move || serve(&listen, socket));

        let mut client = (0..100)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                TcpStream::connect(&addr).ok()
            })
            .expect("the relay listens");
        client.write_all(b"connect example.com:443\n").unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(client)
            .read_line(&mut answer)
            .unwrap();

        assert_eq!(answer, "CONNECT EXAMPLE.COM:443\n");
    }
}
