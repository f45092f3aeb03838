//! A fault-injecting HTTP proxy in front of the S3 server (moto): requests pass through to it
//! unchanged, except that while a fault is on, uploads (PUT and POST), or with
//! [`Fault::DenyAll`] every request, are answered with an S3 error instead. One request per connection (the proxy answers `Connection: close`), which the
//! S3 client handles as any server closing a connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// What the proxy does to uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fault {
    /// Everything passes.
    None = 0,
    /// 503 SlowDown: S3 asks the client to back off; clients retry it.
    SlowDown = 1,
    /// 403 AccessDenied: not retried; the upload fails at once.
    Deny = 2,
    /// 403 AccessDenied to every request, reads and listings too: S3 unreachable for this job.
    DenyAll = 3,
}

/// A running proxy.
pub(crate) struct S3FaultProxy {
    pub(crate) endpoint: String,
    fault: Arc<AtomicU8>,
    injected: Arc<AtomicU64>,
}

impl S3FaultProxy {
    /// Listens on a free local port, forwarding to `upstream` (`http://host:port`).
    pub(crate) fn start(upstream: &str) -> S3FaultProxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (fault, injected) = (Arc::new(AtomicU8::new(0)), Arc::new(AtomicU64::new(0)));
        let (f, n) = (fault.clone(), injected.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (f, n) = (f.clone(), n.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &f, &n);
                });
            }
        });
        S3FaultProxy { endpoint, fault, injected }
    }

    /// Turns a fault on (or off, with [`Fault::None`]).
    pub(crate) fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Requests answered with an injected error so far.
    pub(crate) fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, fault: &AtomicU8, injected: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let upload = head.first().is_some_and(|l| l.starts_with("PUT ") || l.starts_with("POST "));
    let mut client = client;
    let answer = match fault.load(Ordering::SeqCst) {
        1 if upload => Some(("503 Slow Down", "SlowDown", "Please reduce your request rate.")),
        2 if upload => Some(("403 Forbidden", "AccessDenied", "Access Denied (injected)")),
        3 => Some(("403 Forbidden", "AccessDenied", "Access Denied (injected)")),
        _ => None,
    };
    if let Some((status, code, message)) = answer {
        injected.fetch_add(1, Ordering::SeqCst);
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        return client.write_all(response.as_bytes());
    }
    let mut server = TcpStream::connect(upstream)?;
    for line in &head {
        server.write_all(line.as_bytes())?;
    }
    server.write_all(b"Connection: close\r\n\r\n")?;
    server.write_all(&body)?;
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}
