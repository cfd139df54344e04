//! The HTTP side of `fetch`: a few HTTP/2 connections (one reqwest client each, so each has its
//! own pool) carrying `--parallel` requests in flight, retries with backoff and jitter (here
//! only, the retryable cause carried in [`Fail`]), and cancellation on Ctrl-C. The tokio runtime
//! lives here only; `fetch` itself stays a plain blocking call.

use super::{Fail, FetchOptions, Reply, prefix_name, store, usable_etag};
use crate::error::{Error, IoContext, Result};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A range to ask for, with the ETag its shard recorded.
pub(super) struct Job {
    pub prefix: u32,
    pub etag: Option<Box<str>>,
}

/// How the requests ended.
pub(super) struct Ended {
    pub requested: u64,
    pub bytes: u64,
    pub interrupted: bool,
    /// Ranges never asked because the run stopped (interrupted or gave up).
    pub not_started: u64,
    pub gave_up: Option<String>,
}

pub(super) struct Client {
    clients: Vec<reqwest::Client>,
    rt: tokio::runtime::Runtime,
    base: String,
    query: &'static str,
    ntlm: bool,
}

/// Consecutive ranges failing every retry before the run stops asking (the network or the
/// server is down: asking a million more would take hours of backoff).
const GIVE_UP_AFTER: u64 = 50;

/// HTTP/2 connections for `parallel` requests: one per 100 (nginx and CDNs allow 100-256 streams
/// a connection), at most 8.
fn connections(parallel: usize) -> usize {
    parallel.div_ceil(100).clamp(1, 8)
}

/// The certificates trusted: the system's (rustls-native-certs reads the distribution's bundle)
/// and those of `--ca-file`.
fn roots(ca_file: Option<&std::path::Path>) -> Result<Vec<reqwest::Certificate>> {
    let mut roots = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        if let Ok(c) = reqwest::Certificate::from_der(&c) {
            roots.push(c);
        }
    }
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).at(ca)?;
        let mine = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::bad_input(ca, format!("not a PEM file of CA certificates ({e})"))
        })?;
        if mine.is_empty() {
            return Err(Error::bad_input(ca, "holds no PEM certificate"));
        }
        roots.extend(mine);
    }
    Ok(roots)
}

impl Client {
    pub(super) fn new(opts: &FetchOptions) -> Result<Client> {
        // ring, the provider the rest of the project's rustls uses.
        crate::pgtls::install_provider();
        let roots = roots(opts.ca_file.as_deref())?;
        let base = if opts.base_url.ends_with('/') {
            opts.base_url.clone()
        } else {
            format!("{}/", opts.base_url)
        };
        // A user name or password in the URL would be kept in the store's record and shown in
        // messages: refused, without echoing the URL (credentials never come from a command
        // line or a config line).
        let secret = |u: &str| {
            u.split_once("://")
                .is_some_and(|(_, r)| r.split('/').next().is_some_and(|h| h.contains('@')))
        };
        if secret(&opts.base_url) {
            return Err(Error::Usage(
                "--base-url: a user name or password in the URL is not supported (it would be \
                 stored and shown); serve the mirror without one, on a private network or \
                 behind a proxy (HTTPS_PROXY)"
                    .into(),
            ));
        }
        let url = reqwest::Url::parse(&base)
            .map_err(|e| Error::Usage(format!("--base-url {}: {e}", opts.base_url)))?;
        if !matches!(url.scheme(), "https" | "http") || url.query().is_some() {
            return Err(Error::Usage(format!(
                "--base-url {}: not an http(s) URL the prefix can be appended to",
                opts.base_url
            )));
        }
        let mut clients = Vec::new();
        for _ in 0..connections(opts.parallel) {
            let b = reqwest::Client::builder()
                .tls_backend_rustls()
                .tls_certs_only(roots.iter().cloned())
                .user_agent(concat!("breach-audit/", env!("CARGO_PKG_VERSION")))
                .gzip(true)
                .brotli(true)
                .connect_timeout(Duration::from_secs(15))
                .timeout(opts.timeout)
                .http2_initial_stream_window_size(1 << 20)
                .http2_initial_connection_window_size(16 << 20)
                .http2_keep_alive_interval(Duration::from_secs(20))
                .http2_keep_alive_timeout(Duration::from_secs(20))
                .redirect(reqwest::redirect::Policy::none());
            clients.push(b.build().map_err(|e| {
                Error::Usage(format!("cannot set up the HTTP client: {}", chain(&e)))
            })?);
        }
        // One thread: the work per range is small (TLS, HTTP/2 framing, a shape check, one
        // append), so a worker pool spent more CPU handing wake-ups between its threads than on
        // the requests, and the server (a local mirror) needs the other core. Shards are
        // compressed and written on their own thread (`fetch`).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the HTTP runtime: {e}")))?;
        Ok(Client {
            clients,
            rt,
            base,
            query: if opts.ntlm { "?mode=ntlm" } else { "" },
            ntlm: opts.ntlm,
        })
    }

    /// Ask for every job, `opts.parallel` at a time, in order; `on_reply` gets each range's
    /// checked reply (with its padding rows) or why it failed, and stops the run with an error.
    pub(super) fn run<F>(
        &self,
        jobs: impl Iterator<Item = Job>,
        mut on_reply: F,
        bar: &crate::progress::Progress,
        opts: &FetchOptions,
    ) -> Ended
    where
        F: FnMut(u32, std::result::Result<(Reply, u64), String>) -> std::result::Result<(), String>,
    {
        let bytes = AtomicU64::new(0);
        let failing = AtomicU64::new(0);
        let gave_up: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let mut requested = 0u64;
        let mut not_started = 0u64;
        self.rt.block_on(async {
            // Ctrl-C (the flag main's handler sets) stops every request at once.
            let watcher = {
                let stop_tx = stop_tx.clone();
                tokio::spawn(async move {
                    loop {
                        if crate::fsutil::check_interrupted().is_err() {
                            let _ = stop_tx.send(true);
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let ctx = Ctx {
                bytes: &bytes,
                failing: &failing,
                gave_up: &gave_up,
                stop_tx: &stop_tx,
                stop_rx: &stop_rx,
                retries: opts.retries,
                ntlm: self.ntlm,
            };
            let mut n = 0u64;
            let mut take = |(prefix, r): One| {
                let Some(r) = r else {
                    not_started += 1;
                    return;
                };
                requested += 1;
                if let Err(why) = on_reply(prefix, r) {
                    let mut g = gave_up.lock().unwrap_or_else(|p| p.into_inner());
                    g.get_or_insert(why);
                    let _ = stop_tx.send(true);
                }
                n += 1;
                if n.is_multiple_of(64) {
                    bar.set_message(format!(
                        "fetching ranges ({})",
                        indicatif::HumanBytes(bytes.load(Ordering::Relaxed))
                    ));
                }
            };
            let ask = |(i, job): (usize, Job)| {
                let client = &self.clients[i % self.clients.len()];
                ctx.one(client, self.url(job.prefix), job)
            };
            let mut jobs = jobs.enumerate();
            // One request per connection first, alone: it sets the connection up, and the rest
            // then share it as HTTP/2 streams. Released all at once, every request would open
            // a connection of its own (the pool cannot know before ALPN that the one being set
            // up will multiplex): hundreds of TLS handshakes, on both sides, for nothing.
            let first: Vec<_> = jobs.by_ref().take(self.clients.len()).collect();
            for r in futures_util::future::join_all(first.into_iter().map(ask)).await {
                take(r);
            }
            let mut stream = futures_util::stream::iter(jobs)
                .map(ask)
                .buffer_unordered(opts.parallel.max(1));
            while let Some(r) = stream.next().await {
                take(r);
            }
            watcher.abort();
        });
        Ended {
            requested,
            bytes: bytes.into_inner(),
            interrupted: crate::fsutil::check_interrupted().is_err(),
            not_started,
            gave_up: gave_up.into_inner().unwrap_or_else(|p| p.into_inner()),
        }
    }

    fn url(&self, prefix: u32) -> String {
        format!("{}{}{}", self.base, prefix_name(prefix), self.query)
    }
}

/// What every request shares.
struct Ctx<'a> {
    bytes: &'a AtomicU64,
    failing: &'a AtomicU64,
    gave_up: &'a std::sync::Mutex<Option<String>>,
    stop_tx: &'a tokio::sync::watch::Sender<bool>,
    stop_rx: &'a tokio::sync::watch::Receiver<bool>,
    retries: u32,
    ntlm: bool,
}

/// A range's result: `None` when it was never asked (the run stopped first).
type One = (u32, Option<std::result::Result<(Reply, u64), String>>);

impl Ctx<'_> {
    async fn one(&self, client: &reqwest::Client, url: String, job: Job) -> One {
        let prefix = job.prefix;
        if *self.stop_rx.borrow() {
            return (prefix, None);
        }
        let mut stop = self.stop_rx.clone();
        let work = self.attempts(client, &url, job);
        let r = tokio::select! {
            r = work => r,
            _ = stop.wait_for(|&s| s) => return (prefix, None),
        };
        match &r {
            Ok(_) => self.failing.store(0, Ordering::Relaxed),
            Err(Fail::Trust(why)) => {
                let mut g = self.gave_up.lock().unwrap_or_else(|p| p.into_inner());
                g.get_or_insert_with(|| {
                    format!("stopped: the server's certificate is refused ({why})")
                });
                let _ = self.stop_tx.send(true);
            }
            Err(Fail::Retry(why) | Fail::Final(why)) => {
                if self.failing.fetch_add(1, Ordering::Relaxed) + 1 >= GIVE_UP_AFTER {
                    let mut g = self.gave_up.lock().unwrap_or_else(|p| p.into_inner());
                    g.get_or_insert_with(|| {
                        format!(
                            "stopped after {GIVE_UP_AFTER} ranges in a row failed every retry (the last: {}: {why})",
                            prefix_name(prefix)
                        )
                    });
                    let _ = self.stop_tx.send(true);
                }
            }
        }
        (
            prefix,
            Some(r.map_err(|f| match f {
                Fail::Retry(s) | Fail::Final(s) | Fail::Trust(s) => s,
            })),
        )
    }

    /// Ask until the range is stored or confirmed, or the retries are spent.
    async fn attempts(
        &self,
        client: &reqwest::Client,
        url: &str,
        job: Job,
    ) -> std::result::Result<(Reply, u64), Fail> {
        let mut attempt = 0u32;
        loop {
            let (why, wait) = match self.attempt(client, url, &job).await {
                Ok(r) => return Ok(r),
                Err((Fail::Retry(why), wait)) => (why, wait),
                Err((f, _)) => return Err(f),
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(Fail::Retry(format!(
                    "{why} ({} attempts)",
                    self.retries + 1
                )));
            }
            // 0.5 s, 1 s, 2 s ... up to 30 s, or what Retry-After asks (at most 5 minutes),
            // with jitter so that a failed burst does not retry in step.
            let backoff =
                Duration::from_millis(500u64 << (attempt - 1).min(6)).min(Duration::from_secs(30));
            let pause = wait.unwrap_or(backoff);
            let jitter = Duration::from_millis(u64::from(
                (job.prefix ^ attempt.wrapping_mul(0x9E37)).wrapping_mul(2654435761) % 250,
            ));
            tokio::time::sleep(pause + jitter).await;
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &str,
        job: &Job,
    ) -> std::result::Result<(Reply, u64), (Fail, Option<Duration>)> {
        let retry = |why: String| (Fail::Retry(why), None);
        // Padding hides the size of a reply from whoever watches the wire; the rows are dropped.
        let mut req = client.get(url).header("Add-Padding", "true");
        if let Some(etag) = &job.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, &**etag);
        }
        let resp = req.send().await.map_err(|e| {
            // A certificate the roots do not vouch for stays so: not worth a retry, nor
            // another range.
            if is_certificate(&e) {
                (
                    Fail::Trust(format!(
                        "{}; if the server is a private mirror with its own CA, pass it with \
                         --ca-file PEM (ca_file in [fetch]); the system's roots are trusted \
                         otherwise",
                        chain(&e)
                    )),
                    None,
                )
            } else {
                retry(chain(&e))
            }
        })?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| usable_etag(v.as_bytes()));
        match status.as_u16() {
            304 if job.etag.is_some() => Ok((Reply::NotModified(etag), 0)),
            304 => Err(retry("HTTP 304 to a request without If-None-Match".into())),
            200 => {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| retry(format!("reading the body: {}", chain(&e))))?;
                self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                let (lines, pad) = store::check_range(job.prefix, &body, self.ntlm)
                    .map_err(|why| retry(format!("a malformed body: {why}")))?;
                Ok((Reply::Lines { etag, lines }, pad))
            }
            408 | 429 | 500..=599 => {
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(300)));
                Err((Fail::Retry(format!("HTTP {status}")), wait))
            }
            // 404, 403, a redirect: asking again will not help.
            _ => Err((Fail::Final(format!("HTTP {status} (not retried)")), None)),
        }
    }
}

/// Is a certificate the cause (rustls refused the server's)?
fn is_certificate(e: &reqwest::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        // io::Error's source() skips the error it wraps, and the connector nests one io::Error
        // in another (kind Other around kind InvalidData around rustls's): look inside each.
        let mut e: &(dyn std::error::Error + 'static) = c;
        loop {
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                return matches!(
                    r,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
            match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => e = inner,
                None => break,
            }
        }
        src = c.source();
    }
    false
}

/// An error with its causes, without the URL (the prefix is named by the caller).
fn chain(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "the body was cut short or damaged".to_string()
    } else {
        "request failed".to_string()
    };
    if let Some(c) = std::error::Error::source(e) {
        s.push_str(": ");
        s.push_str(&crate::error::chain(c));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_with_credentials_is_refused_without_echoing_them() {
        for url in [
            "https://mirror:hunter2@mirror.example/range/",
            "http://hunter2@10.0.0.1:8080/range",
        ] {
            let mut opts = FetchOptions::new("/nonexistent".into());
            opts.base_url = url.into();
            let Err(e) = Client::new(&opts) else {
                panic!("{url} accepted");
            };
            let msg = e.to_string();
            assert!(msg.contains("user name or password"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        // An @ in the path is not a credential.
        let mut opts = FetchOptions::new("/nonexistent".into());
        opts.base_url = "https://mirror.example/@range/".into();
        assert!(Client::new(&opts).is_ok());
    }
}
