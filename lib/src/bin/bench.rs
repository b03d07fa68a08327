//! Measurement driver for `scripts/bench` (not a route). Prints one JSON object per run.
//!
//!   bench cold-start BINARY RUNS           process start -> first /api/health answer, idle RSS
//!   bench load URL CONCURRENCY SECONDS     GET latency percentiles under concurrent load

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
        _ => Err("usage: bench cold-start BINARY RUNS | bench load URL CONCURRENCY SECONDS".into()),
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

/// `concurrency` clients send GETs to `url` for `seconds`.
fn load(url: &str, concurrency: usize, seconds: usize) -> Result<String, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(seconds as u64);
        let workers = (0..concurrency).map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let ok = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        });
        let (mut latencies, mut errors) = (Vec::new(), 0);
        for worker in futures_util::future::join_all(workers).await {
            let (l, e) = worker.map_err(|e| e.to_string())?;
            latencies.extend(l);
            errors += e;
        }
        let requests = latencies.len();
        Ok(serde_json::json!({
            "concurrency": concurrency,
            "seconds": seconds,
            "requests": requests,
            "errors": errors,
            "requests_per_s": requests as f64 / seconds as f64,
            "latency_ms": summary(&mut latencies),
        })
        .to_string())
    })
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
