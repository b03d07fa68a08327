//! `scripts/simulate`: signs and posts a sample WhatsApp message (or the verification
//! handshake) to a running server, then prints the reply as recorded in the database.
//!
//!   simulate [TEXT] [--type TYPE] [--from WA_ID|BSUID] [--to PHONE_NUMBER_ID] [--url BASE]
//!            [--wait SECONDS] [--verify]
//!
//! Reads WHATSAPP_APP_SECRET / WHATSAPP_VERIFY_TOKEN, and POSTGREST_URL (or SUPABASE_URL) with
//! SUPABASE_SERVICE_ROLE_KEY to find the reply.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use assistant::configuration::Settings;
use assistant::supabase::{Caller, Postgrest};
use assistant::whatsapp::sample::{self, Sample, SAMPLE_TYPES};
use assistant::whatsapp::signature;
use serde_json::Value;

struct Options {
    text: String,
    kind: String,
    from: String,
    to: String,
    url: String,
    wait: u64,
    verify: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        text: "hello".into(),
        kind: "text".into(),
        from: "15550001111".into(),
        to: "100000000000001".into(),
        url: "http://127.0.0.1:3000".into(),
        wait: 10,
        verify: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--type" => options.kind = value()?,
            "--from" => options.from = value()?,
            "--to" => options.to = value()?,
            "--url" => options.url = value()?.trim_end_matches('/').to_string(),
            "--wait" => options.wait = value()?.parse().map_err(|_| "--wait takes seconds")?,
            "--verify" => options.verify = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            text => options.text = text.to_string(),
        }
    }
    if !SAMPLE_TYPES.contains(&options.kind.as_str()) {
        return Err(format!("--type must be one of {}", SAMPLE_TYPES.join(", ")));
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}\nusage: scripts/simulate [TEXT] [--type {}] [--from WA_ID|BSUID] [--to PHONE_NUMBER_ID] [--url BASE] [--wait SECONDS] [--verify]", SAMPLE_TYPES.join("|"));
            return ExitCode::from(2);
        }
    };
    let result = if options.verify {
        verify(&options).await
    } else {
        message(&options).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("simulate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

async fn verify(options: &Options) -> Result<(), String> {
    let token = env("WHATSAPP_VERIFY_TOKEN", "local-verify-token");
    let challenge = uuid::Uuid::new_v4().simple().to_string();
    let response = reqwest::Client::new()
        .get(format!("{}/api/webhook", options.url))
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", &token),
            ("hub.challenge", &challenge),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("GET /api/webhook (handshake) -> {status}");
    if status.is_success() && body == challenge {
        println!("challenge echoed: the verify token matches");
        Ok(())
    } else {
        Err(format!("handshake refused: {body}"))
    }
}

async fn message(options: &Options) -> Result<(), String> {
    let wamid = format!("wamid.simulated.{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::to_vec(&sample::delivery(&Sample {
        kind: &options.kind,
        text: &options.text,
        from: &options.from,
        profile_name: "Simulated Contact",
        phone_number_id: &options.to,
        wamid: &wamid,
        timestamp: chrono::Utc::now().timestamp(),
    }))
    .map_err(|e| e.to_string())?;
    let secret = env("WHATSAPP_APP_SECRET", "local-app-secret");
    let response = reqwest::Client::new()
        .post(format!("{}/api/webhook", options.url))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature::sign(secret.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    println!(
        "POST /api/webhook ({}) -> {status} {}",
        options.kind,
        response.text().await.unwrap_or_default()
    );
    if !status.is_success() {
        return Err("the webhook refused the delivery".into());
    }
    let settings = Settings::from_env();
    let Ok(database) = settings.database else {
        println!(
            "(set POSTGREST_URL or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY to see the reply)"
        );
        return Ok(());
    };
    let db = Postgrest::new(&database);
    print_reply(&db, &wamid, Duration::from_secs(options.wait)).await
}

async fn rows(db: &Postgrest, column: &str, value: &str) -> Result<Vec<Value>, String> {
    db.from("messages", Caller::Service)
        .select("id,status,type,body")
        .eq(column, value)
        .fetch::<Vec<Value>>()
        .await
        .map(|a| a.data)
        .map_err(|e| e.to_string())
}

async fn print_reply(db: &Postgrest, wamid: &str, wait: Duration) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Some(inbound) = rows(db, "wa_message_id", wamid).await?.first() {
            let done =
                ["processed", "failed"].contains(&inbound["status"].as_str().unwrap_or_default());
            let id = inbound["id"].as_str().unwrap_or_default();
            if let Some(reply) = rows(db, "reply_to", id).await?.first().filter(|_| done) {
                println!(
                    "reply ({}, {}): {}",
                    reply["type"].as_str().unwrap_or("?"),
                    reply["status"].as_str().unwrap_or("?"),
                    reply["body"].as_str().unwrap_or("")
                );
                return Ok(());
            }
            if done {
                println!(
                    "processed ({}) without a reply",
                    inbound["status"].as_str().unwrap_or("?")
                );
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no reply recorded within {}s", wait.as_secs()))
}
