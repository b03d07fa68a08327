//! Measurement driver for `scripts/bench` (not a route). Prints one JSON object per run.
//!
//!   bench cold-start BINARY RUNS               process start -> first /api/health, idle RSS
//!   bench load URL CONCURRENCY SECONDS         GET latency percentiles under concurrent load
//!   bench webhook URL CONCURRENCY SECONDS KIND signed deliveries (KIND: messages | statuses),
//!                                              signed with $WHATSAPP_APP_SECRET, to the number
//!                                              $BENCH_PHONE_NUMBER_ID
//!   bench fake-graph PORT                      a Graph API stand-in answering every send
//!   bench reminders URL                        one check-reminders run (bearer $CRON_SECRET):
//!                                              its summary and reminders sent per second

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["cold-start", binary, runs] => cold_start(binary, parse(runs)),
        ["load", url, concurrency, seconds] => load(url, parse(concurrency), parse(seconds)),
        ["webhook", url, concurrency, seconds, kind] => {
            webhook(url, parse(concurrency), parse(seconds), *kind == "statuses")
        }
        ["fake-graph", port] => fake_graph(port.parse().unwrap_or(0)),
        ["reminders", url] => reminders(url),
        _ => Err("usage: see the header of lib/src/bin/bench.rs".into()),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse(value: &str) -> usize {
    value.parse().unwrap_or(1).max(1)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// One plain HTTP/1.1 GET on a fresh connection; the status code, if anything answered.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `binary` `runs` times; each time measures until the first `/api/health` answer,
/// then the resident memory once idle.
fn cold_start(binary: &str, runs: usize) -> Result<String, String> {
    let mut starts = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = free_port()?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env("VERCEL_DEV_PORT", port.to_string())
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let answered = loop {
            if get_status(port, "/api/health").is_some() {
                break Some(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        std::thread::sleep(Duration::from_millis(300));
        rss.extend(rss_kib(child.id()));
        let _ = child.kill();
        let _ = child.wait();
        starts.push(answered.ok_or("no answer within 10 s")?);
    }
    Ok(serde_json::json!({
        "runs": runs,
        "cold_start_ms": summary(&mut starts),
        "idle_rss_kib": rss.iter().copied().max(),
    })
    .to_string())
}

/// What a load run produced.
struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
}

/// Runs `concurrency` workers for `seconds`; each calls `request(worker, n)` in a loop, which
/// answers whether the request succeeded.
fn run_load<F, Fut>(concurrency: usize, seconds: usize, request: F) -> Result<Outcome, String>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let request = std::sync::Arc::new(request);
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds as u64);
        let workers = (0..concurrency).map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0usize, 0usize);
                while Instant::now() < deadline {
                    n += 1;
                    let sent = Instant::now();
                    if request(worker, n).await {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        });
        let mut outcome = Outcome {
            latencies: Vec::new(),
            errors: 0,
        };
        for worker in futures_util::future::join_all(workers).await {
            let (latencies, errors) = worker.map_err(|e| e.to_string())?;
            outcome.latencies.extend(latencies);
            outcome.errors += errors;
        }
        Ok(outcome)
    })
}

fn report(concurrency: usize, seconds: usize, mut outcome: Outcome) -> serde_json::Value {
    let requests = outcome.latencies.len();
    serde_json::json!({
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": requests,
        "errors": outcome.errors,
        "requests_per_s": requests as f64 / seconds as f64,
        "latency_ms": summary(&mut outcome.latencies),
    })
}

/// Signed WhatsApp deliveries: one new text message each, or one status each.
fn webhook(
    url: &str,
    concurrency: usize,
    seconds: usize,
    statuses: bool,
) -> Result<String, String> {
    let secret =
        std::env::var("WHATSAPP_APP_SECRET").map_err(|_| "WHATSAPP_APP_SECRET is not set")?;
    let number =
        std::env::var("BENCH_PHONE_NUMBER_ID").unwrap_or_else(|_| "100000000000001".into());
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let url = url.to_string();
    let prefix = format!("wamid.bench.{run}.");
    let outcome = run_load(concurrency, seconds, move |worker, n| {
        // Every fourth worker is a person with a username and no phone number (a BSUID).
        let from = if worker % 4 == 3 && !statuses {
            format!("US.1777{worker:08}")
        } else {
            format!("1777{worker:08}")
        };
        let wamid = format!("{prefix}{worker}.{n}");
        let now = chrono::Utc::now().timestamp();
        let payload = if statuses {
            status_delivery(&number, &from, &wamid, now)
        } else {
            assistant::whatsapp::sample::delivery(&assistant::whatsapp::sample::Sample {
                kind: "text",
                text: "bench message",
                from: &from,
                profile_name: "Bench",
                phone_number_id: &number,
                wamid: &wamid,
                timestamp: now,
            })
        };
        let body = payload.to_string().into_bytes();
        let signature = assistant::whatsapp::signature::sign(secret.as_bytes(), &body);
        let request = client
            .post(&url)
            .header("x-hub-signature-256", signature)
            .body(body);
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })?;
    let mut report = report(concurrency, seconds, outcome);
    report["wamid_prefix"] = format!("wamid.bench.{run}.").into();
    Ok(report.to_string())
}

fn status_delivery(number: &str, recipient: &str, wamid: &str, now: i64) -> serde_json::Value {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100001", "phone_number_id": number},
            "statuses": [{"id": wamid, "status": "delivered", "timestamp": now.to_string(), "recipient_id": recipient}],
        }}]}],
    })
}

/// Answers every Graph API call like a successful send, with a fresh wamid.
fn fake_graph(port: u16) -> Result<String, String> {
    use hyper_util::rt::TokioIo;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let body = serde_json::json!({
                        "messaging_product": "whatsapp",
                        "contacts": [],
                        "messages": [{"id": format!("wamid.fake.{}", uuid::Uuid::new_v4().simple())}],
                    });
                    let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                });
                let connection = hyper::server::conn::http1::Builder::new();
                let _ = connection.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

/// One cron run of `/api/cron/check-reminders` at `url`: its JSON summary, the wall time and
/// the reminders sent per second.
fn reminders(url: &str) -> Result<String, String> {
    let secret = std::env::var("CRON_SECRET").map_err(|_| "CRON_SECRET is not set")?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let started = Instant::now();
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(secret)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let mut summary: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let wall = started.elapsed();
        if !status.is_success() {
            return Err(format!("check-reminders answered {status}: {summary}"));
        }
        let sent = summary["sent"].as_u64().unwrap_or_default();
        summary["wall_ms"] = (wall.as_secs_f64() * 1000.0).round().into();
        summary["reminders_per_s"] = (sent as f64 / wall.as_secs_f64()).round().into();
        Ok(summary.to_string())
    })
}

/// `concurrency` clients send GETs to `url` for `seconds`.
fn load(url: &str, concurrency: usize, seconds: usize) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let url = url.to_string();
    let outcome = run_load(concurrency, seconds, move |_, _| {
        let request = client.get(&url);
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })?;
    Ok(report(concurrency, seconds, outcome).to_string())
}

/// Median, p90, p99 and max in milliseconds.
fn summary(samples: &mut [Duration]) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples
            .get(index)
            .map(|d| (d.as_secs_f64() * 1e5).round() / 100.0)
    };
    serde_json::json!({ "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0) })
}
