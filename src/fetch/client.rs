//! The HTTP side of `fetch`: a few HTTP/2 connections (one reqwest client each, so each has its
//! own pool) carrying `--parallel` requests in flight, retries with backoff, and cancellation on
//! Ctrl-C. The tokio runtime lives here only; `fetch` itself stays a plain blocking call.

use super::{Done, Entry, Fail, FetchOptions, Writer, prefix_name, usable_etag};
use crate::error::{Error, IoContext, Result};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A range to ask for, with the ETag of the file we have.
pub(super) struct Job {
    pub prefix: u32,
    pub etag: Option<Box<str>>,
}

/// What the requests came to.
pub(super) struct Results {
    pub done: Vec<(u32, std::result::Result<(Done, Entry), String>)>,
    pub bytes: u64,
    pub padding: u64,
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
}

/// Consecutive ranges failing every retry before the run stops asking (the network or the
/// server is down: asking a million more would take hours of backoff).
const GIVE_UP_AFTER: u64 = 50;

/// HTTP/2 connections for `parallel` requests: one per 100 (nginx and CDNs allow 100-256 streams
/// a connection), at most 8.
fn connections(parallel: usize) -> usize {
    parallel.div_ceil(100).clamp(1, 8)
}

impl Client {
    pub(super) fn new(opts: &FetchOptions) -> Result<Client> {
        let mut roots = Vec::new();
        if let Some(ca) = &opts.ca_file {
            let pem = std::fs::read(ca).at(ca)?;
            roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::bad_input(ca, format!("not a PEM file of CA certificates ({e})"))
            })?;
            if roots.is_empty() {
                return Err(Error::bad_input(ca, "holds no PEM certificate"));
            }
        }
        let base = if opts.base_url.ends_with('/') {
            opts.base_url.clone()
        } else {
            format!("{}/", opts.base_url)
        };
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
            let mut b = reqwest::Client::builder()
                .tls_backend_native()
                .user_agent(concat!(
                    "breach-audit/",
                    env!("CARGO_PKG_VERSION"),
                    " (Pwned Passwords range fetch)"
                ))
                .gzip(true)
                .brotli(true)
                .connect_timeout(Duration::from_secs(15))
                .timeout(opts.timeout)
                .http2_initial_stream_window_size(1 << 20)
                .http2_initial_connection_window_size(16 << 20)
                .http2_keep_alive_interval(Duration::from_secs(20))
                .http2_keep_alive_timeout(Duration::from_secs(20))
                .redirect(reqwest::redirect::Policy::none());
            for c in &roots {
                b = b.add_root_certificate(c.clone());
            }
            clients.push(b.build().map_err(|e| {
                Error::Usage(format!("cannot set up the HTTP client: {}", chain(&e)))
            })?);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the HTTP runtime: {e}")))?;
        Ok(Client {
            clients,
            rt,
            base,
            query: if opts.ntlm { "?mode=ntlm" } else { "" },
        })
    }

    /// Ask for every job, `opts.parallel` at a time.
    pub(super) fn run(
        &self,
        jobs: Vec<Job>,
        writer: &Writer,
        entries: &[Option<Entry>],
        bar: &crate::progress::Progress,
        opts: &FetchOptions,
    ) -> Results {
        let bytes = AtomicU64::new(0);
        let padding = AtomicU64::new(0);
        let failing = AtomicU64::new(0);
        let gave_up: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let total = jobs.len();
        let results = self.rt.block_on(async {
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
                writer,
                entries,
                bytes: &bytes,
                padding: &padding,
                failing: &failing,
                gave_up: &gave_up,
                stop_tx: &stop_tx,
                stop_rx: &stop_rx,
                retries: opts.retries,
            };
            let mut jobs = jobs.into_iter().enumerate();
            let mut out = Vec::with_capacity(total);
            // One range per connection first: each client then holds an HTTP/2 connection
            // that the rest share, instead of racing to open one per request.
            let first: Vec<_> = jobs.by_ref().take(self.clients.len()).collect();
            let warm = futures_util::future::join_all(first.into_iter().map(|(i, job)| {
                let client = &self.clients[i % self.clients.len()];
                ctx.one(client, self.url(job.prefix), job)
            }))
            .await;
            for r in warm {
                bar.inc(1);
                out.push(r);
            }
            let mut stream = futures_util::stream::iter(jobs)
                .map(|(i, job)| {
                    let client = &self.clients[i % self.clients.len()];
                    ctx.one(client, self.url(job.prefix), job)
                })
                .buffer_unordered(opts.parallel.max(1));
            let mut n = 0u64;
            while let Some(r) = stream.next().await {
                out.push(r);
                n += 1;
                if n % 256 == 0 {
                    bar.inc(256);
                    bar.set_message(format!(
                        "fetching ranges ({})",
                        indicatif::HumanBytes(bytes.load(Ordering::Relaxed))
                    ));
                }
            }
            watcher.abort();
            out
        });
        let mut done = Vec::with_capacity(results.len());
        let mut not_started = 0u64;
        for (prefix, r) in results {
            match r {
                Some(r) => done.push((prefix, r)),
                None => not_started += 1,
            }
        }
        let interrupted = crate::fsutil::check_interrupted().is_err();
        Results {
            done,
            bytes: bytes.into_inner(),
            padding: padding.into_inner(),
            interrupted,
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
    writer: &'a Writer,
    entries: &'a [Option<Entry>],
    bytes: &'a AtomicU64,
    padding: &'a AtomicU64,
    failing: &'a AtomicU64,
    gave_up: &'a std::sync::Mutex<Option<String>>,
    stop_tx: &'a tokio::sync::watch::Sender<bool>,
    stop_rx: &'a tokio::sync::watch::Receiver<bool>,
    retries: u32,
}

/// A range's result: `None` when it was never asked (the run stopped first).
type One = (u32, Option<std::result::Result<(Done, Entry), String>>);

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
            Err(Fail::Fatal(why)) => {
                let mut g = self.gave_up.lock().unwrap_or_else(|p| p.into_inner());
                g.get_or_insert_with(|| format!("stopped: {why}"));
                let _ = self.stop_tx.send(true);
            }
        }
        (
            prefix,
            Some(r.map_err(|f| match f {
                Fail::Retry(s) | Fail::Final(s) | Fail::Fatal(s) => s,
            })),
        )
    }

    /// Ask until the range is stored or confirmed, or the retries are spent.
    async fn attempts(
        &self,
        client: &reqwest::Client,
        url: &str,
        job: Job,
    ) -> std::result::Result<(Done, Entry), Fail> {
        let had = self.entries[job.prefix as usize].as_ref();
        let mut attempt = 0u32;
        loop {
            let (why, wait) = match self.attempt(client, url, &job, had).await {
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
            let backoff = Duration::from_millis(500u64 << (attempt - 1).min(6)).min(Duration::from_secs(30));
            let pause = wait.unwrap_or(backoff);
            let jitter = Duration::from_millis(u64::from(job.prefix.wrapping_mul(2654435761) % 250));
            tokio::time::sleep(pause + jitter).await;
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &str,
        job: &Job,
        had: Option<&Entry>,
    ) -> std::result::Result<(Done, Entry), (Fail, Option<Duration>)> {
        let retry = |why: String| (Fail::Retry(why), None);
        let mut req = client.get(url);
        if let (Some(etag), Some(_)) = (&job.etag, had) {
            req = req.header(reqwest::header::IF_NONE_MATCH, &**etag);
        }
        let resp = req.send().await.map_err(|e| retry(chain(&e)))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| usable_etag(v.as_bytes()));
        match status.as_u16() {
            304 => {
                let Some(had) = had else {
                    return Err(retry("HTTP 304 to a request without If-None-Match".into()));
                };
                self.writer
                    .confirm(job.prefix, had, etag)
                    .map(|e| (Done::Unchanged, e))
                    .map_err(|f| (f, None))
            }
            200 => {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| retry(format!("reading the body: {}", chain(&e))))?;
                self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                let (done, entry, pad) = self
                    .writer
                    .store(job.prefix, &body, etag)
                    .map_err(|f| (f, None))?;
                self.padding.fetch_add(pad, Ordering::Relaxed);
                Ok((done, entry))
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
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
