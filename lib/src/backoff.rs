//! Exponential backoff with jitter, shared by every retry loop (Graph sends, AI providers).

use std::time::Duration;

/// `base * 2^(attempt-1)`, plus up to 50 % jitter (attempt 1 is the first retry).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let exact = base * 2u32.pow(attempt.clamp(1, 16) - 1);
    exact + exact.mul_f64(f64::from(nanos % 500) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        let second = backoff(base, 2);
        assert!(second >= Duration::from_millis(200) && second < Duration::from_millis(300));
        let first = backoff(base, 1);
        assert!(first >= base && first < Duration::from_millis(150));
    }
}
