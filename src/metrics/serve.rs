//! The `/metrics` HTTP endpoint served while a run lasts: a minimal HTTP/1.1 answer per
//! connection (`GET`/`HEAD` of `/metrics`, 404 elsewhere, 405 for other methods), rendered
//! afresh on every request.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::CONTENT_TYPE;

/// Most connections answered at once; more are closed as they arrive (a scrape makes one).
const MAX_CONNECTIONS: usize = 16;

/// Binds `addr` and serves `GET /metrics` (rendered by `render_now` on every request) until
/// `stop` is cancelled, answering at most [`MAX_CONNECTIONS`] connections at once. Returns the bound address; a bind failure is returned for the caller
/// to log.
pub async fn serve(
    addr: std::net::SocketAddr,
    render_now: Arc<dyn Fn() -> String + Send + Sync>,
    stop: CancellationToken,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!("metrics endpoint: too many connections at once; closing one");
                drop(stream);
                continue;
            };
            let render_now = render_now.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), answer(stream, render_now)).await;
                drop(permit);
            });
        }
    });
    Ok((local, task))
}

async fn answer(
    mut stream: TcpStream,
    render_now: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render_now()),
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "pulsar2mysql: metrics at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections that never send a request (a scanner, a slowloris) are held at most up to
    /// the cap; past it they are closed at once instead of each holding a task and a socket.
    #[tokio::test]
    async fn idle_connections_beyond_the_cap_are_closed_at_once() {
        let stop = CancellationToken::new();
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(|| "m 1\n".to_string()),
            stop.clone(),
        )
        .await
        .unwrap();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 40 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut closed = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte));
            if let Ok(Ok(0)) = read.await {
                closed += 1;
            }
        }
        assert!(
            closed >= 40,
            "only {closed} connections past the cap were closed"
        );
        stop.cancel();
    }
}
