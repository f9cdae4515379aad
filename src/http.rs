//! HTTP for the two small calls pulsar2mysql makes besides its two protocols: the Pulsar
//! admin API (message id for a publish time) and the Pushgateway.
//!
//! A thin layer over `reqwest` (hyper with rustls on ring, the TLS stack the broker and MySQL
//! connections already use; no OpenSSL): http and https, a hard deadline on the whole
//! exchange, a cap on the reply's size (a larger reply is an error, never an allocation of
//! what the server chose to send), no redirect followed behind the caller's back (the caller
//! decides whether credentials may follow one), no proxy from the environment, and any reply,
//! however malformed, is an answer or an error, never a panic.

use std::time::Duration;

/// The largest reply body read (the admin API answers ~60 bytes, the Pushgateway less).
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// The deadline of one exchange (connect, TLS, request, whole reply).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status code, body (invalid UTF-8 replaced) and the `Location` header, if any.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// A client for a few requests to one service.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    timeout: Duration,
    max_reply: usize,
}

impl Client {
    /// A client that trusts the public web roots plus the CA certificates (PEM) of
    /// `extra_ca_pem`, as the broker connection does with `--pulsar-tls-ca-file`.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Client, String> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the service, like the broker and MySQL connections: an HTTP(S)_PROXY
            // of the environment is not asked to carry a token.
            .no_proxy()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .user_agent(concat!("pulsar2mysql/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("cannot read the CA certificates: {}", chain(e)))?;
            if certs.is_empty() {
                return Err("the CA file holds no PEM certificate".into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let inner = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", chain(e)))?;
        Ok(Client {
            inner,
            timeout: TIMEOUT,
            max_reply: MAX_REPLY_BYTES,
        })
    }

    /// The same client with another deadline and reply cap (tests).
    #[cfg(test)]
    pub fn with_limits(mut self, timeout: Duration, max_reply: usize) -> Client {
        self.timeout = timeout;
        self.max_reply = max_reply;
        self
    }

    /// Sends one request and reads the whole reply. `headers` are extra `(name, value)`
    /// pairs; values are marked sensitive (never logged by the HTTP stack).
    pub async fn request(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<Response, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "unsupported scheme '{}' (http:// or https:// only)",
                url.scheme()
            ));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("invalid HTTP method {method:?}"))?;
        let mut req = self
            .inner
            .request(method, url.clone())
            .body(body.to_string());
        for (name, value) in headers {
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for the {name} header"))?;
            value.set_sensitive(true);
            req = req.header(*name, value);
        }
        let max = self.max_reply;
        let exchange = async {
            let mut reply = req.send().await.map_err(chain)?;
            let status = reply.status().as_u16();
            let location = reply
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let too_large = || format!("the reply (status {status}) is larger than {max} bytes");
            if reply.content_length().is_some_and(|n| n > max as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(piece) = reply
                .chunk()
                .await
                .map_err(|e| format!("cannot read the reply: {}", chain(e)))?
            {
                if body.len() + piece.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&piece);
            }
            Ok(Response {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                location,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no reply within {:?}", self.timeout))?
    }
}

/// An error with its causes ("error sending request: ... : invalid peer certificate:
/// UnknownIssuer"), without the URL (the caller names the service).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Reads a request head (up to the blank line).
    async fn read_head(s: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// Answers one connection with `reply` (raw bytes, written as given) once the request head
    /// arrived, then closes it; returns the URL to ask.
    async fn serve_once(reply: Vec<u8>) -> url::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            if read_head(&mut s).await.is_some() {
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            }
        });
        format!("http://{addr}/admin").parse().unwrap()
    }

    fn client() -> Client {
        Client::new(None)
            .unwrap()
            .with_limits(Duration::from_secs(5), MAX_REPLY_BYTES)
    }

    async fn get(url: &url::Url) -> Result<Response, String> {
        client().request("GET", url, &[], "").await
    }

    #[tokio::test]
    async fn plain_and_chunked_replies_are_read() {
        let r = get(&serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()).await)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = get(&serve_once(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await)
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "{\"a\":1}"));
        let r = get(&serve_once(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://b:8443/x\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .await)
        .await
        .unwrap();
        assert_eq!(
            (r.status, r.location.as_deref()),
            (307, Some("https://b:8443/x"))
        );
    }

    #[tokio::test]
    async fn a_chunk_that_splits_a_utf8_character_is_joined_not_a_panic() {
        let url = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xc3\r\n1\r\n\xa9\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await;
        assert_eq!(get(&url).await.unwrap().body, "\u{e9}");
        // Invalid UTF-8 is replaced, not a panic.
        let url =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\xff\xc3{".to_vec()).await;
        assert_eq!(get(&url).await.unwrap().body, "\u{fffd}\u{fffd}{");
    }

    #[tokio::test]
    async fn a_reply_over_the_cap_is_an_error_not_an_allocation() {
        // Announced by Content-Length: refused before reading the body.
        let big = vec![b'x'; 2 * MAX_REPLY_BYTES];
        let mut reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
        reply.extend_from_slice(&big);
        let err = get(&serve_once(reply).await).await.unwrap_err();
        assert!(err.contains("larger than"), "{err}");

        // Chunked without end: reading stops at the cap, long before the deadline.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            if read_head(&mut s).await.is_none() {
                return;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
            while s.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let started = std::time::Instant::now();
        let err = get(&format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn garbage_is_an_error_never_a_panic() {
        for reply in [
            &b"garbage"[..],
            b"garbage\r\n\r\n",
            b"",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
            b"HTTP/1.1 999999999 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: \xff\xfe\r\nContent-Length: 0\r\n\r\n",
            b"\x00\x01\x02\x03\r\n\r\n\xff",
        ] {
            let shown = String::from_utf8_lossy(reply).into_owned();
            let answer = get(&serve_once(reply.to_vec()).await).await;
            assert!(
                answer.is_err() || reply.starts_with(b"HTTP/1.1 200"),
                "{shown:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_hits_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = read_head(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let started = std::time::Instant::now();
        let err = Client::new(None)
            .unwrap()
            .with_limits(Duration::from_millis(300), MAX_REPLY_BYTES)
            .request("GET", &format!("http://{addr}/").parse().unwrap(), &[], "")
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    }

    #[tokio::test]
    async fn headers_and_body_are_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let head = read_head(&mut s).await.unwrap();
            let _ = s
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .await;
            head
        });
        let r = client()
            .request(
                "PUT",
                &format!("http://{addr}/metrics").parse().unwrap(),
                &[("Authorization", "Bearer t0k3n".into())],
                "a 1\n",
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202);
        let head = seen.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("put /metrics http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer t0k3n"), "{head}");
        assert!(head.contains("content-length: 4"), "{head}");
    }

    #[tokio::test]
    async fn other_schemes_and_bad_ca_files_are_errors() {
        let err = client()
            .request("GET", &"ftp://127.0.0.1/".parse().unwrap(), &[], "")
            .await
            .unwrap_err();
        assert!(err.contains("unsupported scheme"), "{err}");
        assert!(Client::new(Some(b"not a certificate")).is_err());
    }
}
