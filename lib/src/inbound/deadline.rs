//! The numbers that keep an invocation within the function's `maxDuration`: what one turn may
//! take at worst, derived from the settings of the calls it makes, and whether a turn begun
//! now still ends in time ([docs/webhook.md](../../../docs/webhook.md#bounded-invocations)).

use std::time::{Duration, Instant};

use crate::configuration::Settings;

/// `maxDuration` of every function in `vercel.json`.
pub const MAX_DURATION: Duration = Duration::from_secs(60);

/// The worst cases of one turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// One database round trip (`DATABASE_TIMEOUT_MS`): the claim, then the outcome.
    pub database: Duration,
    /// Everything between them, cut off when it runs out: mark as read, media, the assistant
    /// and its tools, the reply's begin and send (`AI_TURN_DEADLINE_MS` + `GRAPH_TIMEOUT_MS`).
    pub answer: Duration,
}

impl Deadlines {
    pub fn new(settings: &Settings) -> Self {
        let database = settings
            .database
            .as_ref()
            .map_or(Duration::from_secs(5), |d| d.timeout);
        Self {
            database,
            answer: settings.ai.turn_deadline + settings.whatsapp.timeout,
        }
    }

    /// The worst case of one turn: claim, answer, outcome.
    pub fn turn(&self) -> Duration {
        self.database * 2 + self.answer
    }

    /// Whether a turn begun now ends within [`MAX_DURATION`] of `started` (the invocation's
    /// start).
    pub fn fits(&self, started: Instant) -> bool {
        started.elapsed() + self.turn() <= MAX_DURATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_with_the_defaults_fits_the_first_twenty_seconds() {
        let settings = Settings::from_lookup(|_| None);
        let deadlines = Deadlines::new(&settings);
        assert_eq!(deadlines.turn(), Duration::from_secs(40));
        assert!(deadlines.fits(Instant::now()));
        let late = Instant::now() - Duration::from_secs(21);
        assert!(
            !deadlines.fits(late),
            "begun at 21 s it could end past 60 s"
        );
    }
}
