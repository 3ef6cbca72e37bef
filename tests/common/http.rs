//! A tiny HTTP/1.1 client for end-to-end tests against real servers: one
//! request per connection (`Connection: close`), std only.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// `POST /login` on a quickstart at `addr` (the demo users' password is
/// `<user>-pw`); its JSON answer, after asserting a 200.
pub fn login(addr: &str, user: &str, password: &str, device: &str) -> serde_json::Value {
    let body = serde_json::json!({ "username": user, "password": password, "device": device });
    let res = request(addr, "POST", "/login", None, Some(&body));
    assert_eq!(res.status, 200, "{res:?}");
    res.json()
}

/// The `access_token` of a `/login` or `/refresh` answer.
pub fn access_token(answer: &serde_json::Value) -> String {
    answer["access_token"]
        .as_str()
        .expect("an access_token in the answer")
        .to_owned()
}

/// Send one request; `bearer` adds `Authorization: Bearer`, `json` a JSON body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    json: Option<&serde_json::Value>,
) -> HttpResponse {
    let body = json.map(|j| j.to_string());
    send(
        addr,
        method,
        path,
        bearer,
        json.map(|_| "application/json"),
        body.as_deref().unwrap_or_default(),
    )
}

/// Send one request with any body and `Content-Type` (none when `None`).
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> HttpResponse {
    let mut headers = String::new();
    if let Some(token) = bearer {
        headers.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(content_type) = content_type {
        headers.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    raw(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Send raw bytes and parse the response.
pub fn raw(addr: &str, request: &str) -> HttpResponse {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    exchange(stream, request)
}

/// [`raw`] from another local address: any `127.x.y.z` reaches a server on
/// 127.0.0.1, so a test can be a second client IP.
pub fn raw_from(local: IpAddr, addr: &str, request: &str) -> HttpResponse {
    let remote: SocketAddr = addr.parse().expect("an ip:port address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(local, 0))?;
            socket.connect(remote).await?.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"));
    stream.set_nonblocking(false).unwrap();
    exchange(stream, request)
}

fn exchange(mut stream: TcpStream, request: &str) -> HttpResponse {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    parse(&buf)
}

fn parse(buf: &[u8]) -> HttpResponse {
    assert!(
        !buf.is_empty(),
        "the server closed the connection without a response (did its handler panic?)"
    );
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
