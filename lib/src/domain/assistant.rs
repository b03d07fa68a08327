//! Values the assistant's tools store: amounts of money and currencies.

use std::fmt;

use serde::Serialize;

/// A positive amount of money with at most two decimals, in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// The largest amount accepted (the column is numeric(12, 2)).
    const MAX_CENTS: i64 = 99_999_999_999;

    /// Reads `12`, `12.5`, `12.50` or `12,50` (a comma is a decimal separator, never a
    /// thousands one: `1,234` is refused rather than guessed).
    pub fn parse(text: &str) -> Option<Self> {
        let (units, cents) = match text.split_once(['.', ',']) {
            Some((units, cents)) => (units, cents),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(units) || units.len() > 9 || (!cents.is_empty() && !digits(cents)) {
            return None;
        }
        let cents = match cents.len() {
            0 => 0,
            1 => cents.parse::<i64>().ok()? * 10,
            2 => cents.parse::<i64>().ok()?,
            _ => return None,
        };
        Self::from_cents(units.parse::<i64>().ok()? * 100 + cents)
    }

    /// An amount given as a number (a tool call), rounded to cents.
    pub fn from_f64(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        Self::from_cents((value * 100.0).round() as i64)
    }

    fn from_cents(cents: i64) -> Option<Self> {
        (1..=Self::MAX_CENTS)
            .contains(&cents)
            .then_some(Self(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// As a JSON number with two decimals' precision.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Option<Self> {
        let code = code.trim().to_ascii_uppercase();
        (code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())).then_some(Self(code))
    }

    /// The currency people in `locale`'s region use (`es_ES` -> EUR), else USD.
    pub fn for_locale(locale: Option<&str>) -> Self {
        let region = locale
            .and_then(|l| l.split(['_', '-']).nth(1))
            .unwrap_or_default()
            .to_ascii_uppercase();
        let code = match region.as_str() {
            "ES" | "FR" | "DE" | "IT" | "PT" | "NL" | "IE" | "AT" | "BE" | "FI" | "GR" => "EUR",
            "GB" => "GBP",
            "MX" => "MXN",
            "AR" => "ARS",
            "CO" => "COP",
            "CL" => "CLP",
            "PE" => "PEN",
            "BR" => "BRL",
            "CA" => "CAD",
            "AU" => "AUD",
            _ => "USD",
        };
        Self(code.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_without_guessing() {
        assert_eq!(Amount::parse("12.50").map(Amount::cents), Some(1250));
        assert_eq!(Amount::parse("12,5").map(Amount::cents), Some(1250));
        assert_eq!(Amount::parse("20").map(Amount::cents), Some(2000));
        assert_eq!(
            Amount::parse("1,234"),
            None,
            "thousands or decimals? refused"
        );
        assert_eq!(Amount::parse("0"), None);
        assert_eq!(Amount::parse("-3"), None);
        assert_eq!(Amount::parse("12.5.0"), None);
        assert_eq!(Amount::from_f64(12.499).map(Amount::cents), Some(1250));
        assert_eq!(Amount::from_f64(f64::NAN), None);
        assert_eq!(
            Amount::parse("7.05").map(|a| a.to_string()),
            Some("7.05".into())
        );
    }

    #[test]
    fn currencies_are_codes_or_come_from_the_locale() {
        assert_eq!(Currency::parse("eur").map(|c| c.0), Some("EUR".into()));
        assert_eq!(Currency::parse("EURO"), None);
        assert_eq!(Currency::for_locale(Some("es_ES")).as_str(), "EUR");
        assert_eq!(Currency::for_locale(Some("es-MX")).as_str(), "MXN");
        assert_eq!(Currency::for_locale(None).as_str(), "USD");
    }
}
