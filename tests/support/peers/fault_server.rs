//! A fault-injecting HTTP/1.1 server for the write API. VictoriaMetrics answers 204 even to
//! malformed lines, so 400/413/429/5xx handling is tested against this instead: a script
//! decides each answer, and the server logs what it received and when, by its own clock.

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line target, e.g. `/api/v2/write?org=o&bucket=b&precision=ms`.
    pub target: String,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    /// The body, gunzipped if it came compressed.
    pub body: String,
    /// When the request was complete.
    pub received_at: Instant,
    /// What the script answered.
    pub status: u16,
    /// When the answer had been written.
    pub answered_at: Instant,
}

impl Received {
    pub fn lines(&self) -> Vec<&str> {
        self.body.lines().collect()
    }
}

/// An answer: status, extra headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// How long the server takes before it answers, as a busy server does.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn with_body(mut self, body: &str) -> Answer {
        self.body = body.to_string();
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Decides the answer to the n-th request (0-based) with the given body.
pub type Script = Box<dyn FnMut(usize, &str) -> Answer + Send>;

pub struct FaultServer {
    pub port: u16,
    log: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start(script: Script) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fault server bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault server addr: {e}"))
            .port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let task = tokio::spawn(accept(listener, script, log.clone()));
        FaultServer { port, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, script: Arc<Mutex<Script>>, log: Arc<Mutex<Vec<Received>>>) {
    // A task per connection: a forwarder may have several requests on the wire. The log is
    // in the order the answers went out; `received_at` orders the requests.
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, script.clone(), log.clone(), counter.clone()));
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Received>>>,
    counter: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = find(&buffer, b"\r\n\r\n") else {
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + 4 + length {
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        }
        let raw_body = buffer[head_end + 4..head_end + 4 + length].to_vec();
        buffer.drain(..head_end + 4 + length);
        let content_encoding = header("content-encoding");
        let body = if content_encoding.as_deref() == Some("gzip") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(raw_body.as_slice())
                .read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("fault server: bad gzip body: {e}"));
            text
        } else {
            String::from_utf8_lossy(&raw_body).to_string()
        };
        let received_at = Instant::now();
        let index = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = match script.lock() {
            Ok(mut script) => script(index, &body),
            Err(_) => Answer::status(500),
        };
        let mut response = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
            answer.status,
            reason(answer.status),
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&answer.body);
        tokio::time::sleep(answer.delay).await;
        let written = stream.write_all(response.as_bytes()).await;
        let answered_at = Instant::now();
        if let Ok(mut log) = log.lock() {
            log.push(Received {
                target: head
                    .lines()
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or_default()
                    .to_string(),
                authorization: header("authorization"),
                content_encoding,
                body,
                received_at,
                status: answer.status,
                answered_at,
            });
        }
        if written.is_err() {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
