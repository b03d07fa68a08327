//! The built-in command parser: plain commands in English and Spanish, answered by the same
//! tools as the model's calls. It serves every message when no AI key is set or the budget is
//! spent, and it is the fast path for commands it understands with certainty. It never
//! guesses: a command it recognises but cannot complete for sure (no time, an ambiguous date,
//! an unreadable amount) is [`Parsed::Unclear`], with what is missing.

mod when;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::assistant::time::Period;
use crate::domain::{Amount, Currency, Recurrence};

/// The language a command was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

/// A command understood with certainty.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    CreateReminder {
        text: String,
        due: DateTime<Utc>,
        recurrence: Recurrence,
    },
    ListReminders,
    CancelReminder {
        number: u32,
    },
    LogExpense {
        amount: Amount,
        currency: Currency,
        category: &'static str,
        note: Option<String>,
    },
    ExpenseSummary {
        period: Period,
    },
    Help,
}

/// What a recognised command lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unclear {
    /// No time, a vague one ("later", "next week"), or two that disagree.
    ReminderNeedsTime,
    ReminderNeedsText,
    InThePast,
    /// A numeric date that reads both ways (3/4).
    AmbiguousDate,
    /// A date or time that does not exist (February 30, 25:00).
    InvalidDateOrTime,
    CancelNeedsNumber,
    ExpenseNeedsAmount,
    SummaryNeedsPeriod,
}

/// The parser's verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Command(Command),
    Unclear(Unclear),
    NotACommand,
}

/// A verdict and the language of the words that decided it (`None` when nothing matched).
#[derive(Clone, Debug, PartialEq)]
pub struct Parse {
    pub lang: Option<Lang>,
    pub parsed: Parsed,
}

/// Where and when the contact is.
#[derive(Clone, Debug)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    /// The currency of amounts written without one.
    pub currency: Currency,
}

/// One kind of command: recognises it (or not) from the message's tokens and words.
type Intent = fn(&[Token], &[&str], &Context) -> Option<Parse>;

/// Parses one message.
pub fn parse(text: &str, context: &Context) -> Parse {
    let tokens = tokenize(text);
    let words: Vec<&str> = tokens.iter().map(|t| t.word.as_str()).collect();
    let intents: [Intent; 6] = [
        help,
        list_reminders,
        cancel_reminder,
        expense_summary,
        log_expense,
        create_reminder,
    ];
    intents
        .iter()
        .find_map(|intent| intent(&tokens, &words, context))
        .unwrap_or(Parse {
            lang: None,
            parsed: Parsed::NotACommand,
        })
}

/// A word of the message: normalised (lower case, no accents, ñ as n, no surrounding
/// punctuation), and as written.
#[derive(Clone, Debug)]
struct Token {
    word: String,
    raw: String,
}

const PUNCTUATION: &[char] = &[
    ',', '.', ';', ':', '!', '?', '¡', '¿', '"', '\'', '(', ')', '[', ']', '«', '»', '“', '”', '‘',
    '’',
];

fn tokenize(text: &str) -> Vec<Token> {
    text.split_whitespace()
        .filter_map(|raw| {
            let trimmed = raw.trim_matches(PUNCTUATION);
            (!trimmed.is_empty()).then(|| Token {
                word: normalize(trimmed),
                raw: raw.to_string(),
            })
        })
        .collect()
}

/// Words as the contact wrote them (case, accents and inner punctuation kept).
fn as_written(tokens: &[&Token]) -> String {
    tokens
        .iter()
        .map(|t| t.raw.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(PUNCTUATION)
        .trim()
        .to_string()
}

fn normalize(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

fn starts_with(words: &[&str], prefix: &[&str]) -> bool {
    words.len() >= prefix.len() && words.iter().zip(prefix).all(|(w, p)| w == p)
}

const POLITE: &[&str] = &["please", "pls", "por", "favor", "thanks", "gracias"];

fn without_politeness<'w>(words: &'w [&'w str]) -> Vec<&'w str> {
    words
        .iter()
        .copied()
        .filter(|w| !POLITE.contains(w))
        .collect()
}

fn command(lang: Lang, command: Command) -> Option<Parse> {
    Some(Parse {
        lang: Some(lang),
        parsed: Parsed::Command(command),
    })
}

fn unclear(lang: Lang, what: Unclear) -> Option<Parse> {
    Some(Parse {
        lang: Some(lang),
        parsed: Parsed::Unclear(what),
    })
}

// ---------------------------------------------------------------------------------------------
// help, my reminders
// ---------------------------------------------------------------------------------------------

fn help(_: &[Token], words: &[&str], _: &Context) -> Option<Parse> {
    let phrase = without_politeness(words).join(" ");
    match phrase.as_str() {
        "help" | "commands" | "menu" | "what can you do" | "how does this work" => {
            command(Lang::En, Command::Help)
        }
        "ayuda" | "comandos" | "que puedes hacer" | "como funciona" => {
            command(Lang::Es, Command::Help)
        }
        _ => None,
    }
}

fn list_reminders(_: &[Token], words: &[&str], _: &Context) -> Option<Parse> {
    let phrase = without_politeness(words).join(" ");
    match phrase.as_str() {
        "my reminders"
        | "reminders"
        | "list reminders"
        | "list my reminders"
        | "show reminders"
        | "show my reminders"
        | "what are my reminders"
        | "what reminders do i have" => command(Lang::En, Command::ListReminders),
        "mis recordatorios"
        | "recordatorios"
        | "ver recordatorios"
        | "ver mis recordatorios"
        | "lista de recordatorios"
        | "listar recordatorios"
        | "muestrame mis recordatorios"
        | "que recordatorios tengo" => command(Lang::Es, Command::ListReminders),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// cancel reminder N
// ---------------------------------------------------------------------------------------------

fn cancel_reminder(_: &[Token], words: &[&str], _: &Context) -> Option<Parse> {
    let words = without_politeness(words);
    let (lang, rest) = match *words.first()? {
        "cancel" | "delete" | "remove" => (Lang::En, &words[1..]),
        "cancela" | "cancelar" | "borra" | "borrar" | "elimina" | "eliminar" | "quita"
        | "quitar" => (Lang::Es, &words[1..]),
        _ => return None,
    };
    let rest: Vec<&str> = rest
        .iter()
        .copied()
        .skip_while(|w| ["the", "my", "el", "mi"].contains(w))
        .collect();
    if !matches!(rest.first(), Some(&("reminder" | "recordatorio"))) {
        return None;
    }
    let number: Vec<&str> = rest[1..]
        .iter()
        .copied()
        .filter(|w| !["number", "no", "num", "numero", "nº", "#"].contains(w))
        .collect();
    match number.as_slice() {
        [n] => match n.trim_start_matches('#').parse::<u32>() {
            Ok(n) if n >= 1 => command(lang, Command::CancelReminder { number: n }),
            _ => unclear(lang, Unclear::CancelNeedsNumber),
        },
        _ => unclear(lang, Unclear::CancelNeedsNumber),
    }
}

// ---------------------------------------------------------------------------------------------
// expenses this month
// ---------------------------------------------------------------------------------------------

fn expense_summary(_: &[Token], words: &[&str], _: &Context) -> Option<Parse> {
    let words = without_politeness(words);
    let questions: &[(&[&str], Lang)] = &[
        (&["how", "much", "did", "i", "spend"], Lang::En),
        (&["how", "much", "have", "i", "spent"], Lang::En),
        (&["cuanto", "gaste"], Lang::Es),
        (&["cuanto", "he", "gastado"], Lang::Es),
        (&["cuanto", "llevo", "gastado"], Lang::Es),
    ];
    let (lang, rest) = if let Some((prefix, lang)) = questions
        .iter()
        .find(|(prefix, _)| starts_with(&words, prefix))
    {
        (*lang, &words[prefix.len()..])
    } else {
        let at = words
            .iter()
            .take(3)
            .position(|w| ["expenses", "spending", "gastos"].contains(w))?;
        let lead_ok = words[..at]
            .iter()
            .all(|w| ["my", "show", "list", "total", "mis", "ver", "los", "total"].contains(w));
        if !lead_ok {
            return None;
        }
        let lang = if words[at] == "gastos" {
            Lang::Es
        } else {
            Lang::En
        };
        (lang, &words[at + 1..])
    };
    let rest = rest
        .iter()
        .copied()
        .skip_while(|w| ["of", "for", "in", "during", "de", "del", "en", "durante"].contains(w))
        .collect::<Vec<_>>()
        .join(" ");
    let period = match rest.as_str() {
        "" | "this month" | "este mes" | "mes" | "month" => Period::ThisMonth,
        "today" | "hoy" => Period::Today,
        "yesterday" | "ayer" => Period::Yesterday,
        "this week" | "esta semana" | "week" | "semana" => Period::ThisWeek,
        "last week" | "la semana pasada" | "semana pasada" => Period::LastWeek,
        "last month" | "el mes pasado" | "mes pasado" => Period::LastMonth,
        "this year" | "este ano" | "ano" | "year" => Period::ThisYear,
        _ => return unclear(lang, Unclear::SummaryNeedsPeriod),
    };
    command(lang, Command::ExpenseSummary { period })
}

// ---------------------------------------------------------------------------------------------
// spent 12.50 on lunch
// ---------------------------------------------------------------------------------------------

fn log_expense(tokens: &[Token], words: &[&str], context: &Context) -> Option<Parse> {
    let triggers: &[(&[&str], Lang)] = &[
        (&["spent"], Lang::En),
        (&["i", "spent"], Lang::En),
        (&["paid"], Lang::En),
        (&["i", "paid"], Lang::En),
        (&["expense"], Lang::En),
        (&["gaste"], Lang::Es),
        (&["yo", "gaste"], Lang::Es),
        (&["he", "gastado"], Lang::Es),
        (&["pague"], Lang::Es),
        (&["gasto"], Lang::Es),
    ];
    let (prefix, lang) = triggers
        .iter()
        .filter(|(prefix, _)| starts_with(words, prefix))
        .max_by_key(|(prefix, _)| prefix.len())?;
    let rest = &words[prefix.len()..];
    let Some((amount, currency, used)) = money(rest, &context.currency) else {
        return unclear(*lang, Unclear::ExpenseNeedsAmount);
    };
    let after = &tokens[prefix.len() + used..];
    let description: Vec<&Token> = after
        .iter()
        .skip_while(|t| {
            ["on", "for", "at", "in", "en", "de", "para", "del"].contains(&t.word.as_str())
        })
        .collect();
    let note = Some(as_written(&description)).filter(|n| !n.is_empty());
    let category = note.as_deref().map(category_of).unwrap_or("other");
    command(
        *lang,
        Command::LogExpense {
            amount,
            currency,
            category,
            note,
        },
    )
}

/// An amount with an optional currency before or after it (`$12`, `12.50€`, `20 euros`,
/// `usd 15`); returns it and how many words it took. An unreadable number is `None`.
fn money(words: &[&str], default: &Currency) -> Option<(Amount, Currency, usize)> {
    let mut used = 0;
    let mut currency = words.first().and_then(|w| currency_word(w));
    if currency.is_some() {
        used += 1;
    }
    let token = words.get(used)?;
    let (symbol_before, rest) = split_symbol_prefix(token);
    let (number, symbol_after) = split_symbol_suffix(rest);
    let amount = Amount::parse(number)?;
    used += 1;
    currency = currency.or(symbol_before).or(symbol_after);
    if currency.is_none() {
        if let Some(code) = words.get(used).and_then(|w| currency_word(w)) {
            currency = Some(code);
            used += 1;
        }
    }
    let currency = match currency {
        Some("$") => dollar_like(default),
        Some(code) => Currency::parse(code)?,
        None => default.clone(),
    };
    Some((amount, currency, used))
}

/// `$` is the default currency where it is written with a dollar sign, else USD.
fn dollar_like(default: &Currency) -> Currency {
    let dollar_sign = ["USD", "MXN", "ARS", "COP", "CLP", "CAD", "AUD"];
    if dollar_sign.contains(&default.as_str()) {
        default.clone()
    } else {
        Currency::for_locale(Some("en_US"))
    }
}

fn split_symbol_prefix(token: &str) -> (Option<&'static str>, &str) {
    for (symbol, code) in [("$", "$"), ("€", "EUR"), ("£", "GBP")] {
        if let Some(rest) = token.strip_prefix(symbol) {
            return (Some(code), rest);
        }
    }
    (None, token)
}

fn split_symbol_suffix(token: &str) -> (&str, Option<&'static str>) {
    for (symbol, code) in [("$", "$"), ("€", "EUR"), ("£", "GBP")] {
        if let Some(rest) = token.strip_suffix(symbol) {
            return (rest, Some(code));
        }
    }
    (token, None)
}

fn currency_word(word: &str) -> Option<&'static str> {
    Some(match word {
        "$" => "$",
        "€" | "eur" | "euro" | "euros" => "EUR",
        "£" | "gbp" | "pounds" | "libras" => "GBP",
        "usd" | "dollars" | "dolares" | "bucks" => "USD",
        "mxn" => "MXN",
        "pesos" => "$",
        _ => return None,
    })
}

/// The category of an expense from the words describing it.
pub fn category_of(description: &str) -> &'static str {
    const CATEGORIES: &[(&str, &[&str])] = &[
        (
            "food",
            &[
                "lunch",
                "dinner",
                "breakfast",
                "food",
                "meal",
                "restaurant",
                "coffee",
                "cafe",
                "pizza",
                "brunch",
                "snack",
                "comida",
                "almuerzo",
                "cena",
                "desayuno",
                "restaurante",
                "menu",
                "tapas",
            ],
        ),
        (
            "groceries",
            &[
                "groceries",
                "grocery",
                "supermarket",
                "super",
                "supermercado",
                "mercado",
                "compra",
            ],
        ),
        (
            "transport",
            &[
                "taxi",
                "uber",
                "cab",
                "bus",
                "metro",
                "subway",
                "train",
                "tren",
                "gas",
                "fuel",
                "gasolina",
                "parking",
                "aparcamiento",
                "transport",
                "transporte",
                "peaje",
                "toll",
            ],
        ),
        ("housing", &["rent", "alquiler", "mortgage", "hipoteca"]),
        (
            "utilities",
            &[
                "electricity",
                "power",
                "water",
                "internet",
                "phone",
                "luz",
                "agua",
                "telefono",
                "movil",
                "wifi",
            ],
        ),
        (
            "health",
            &[
                "pharmacy", "medicine", "doctor", "dentist", "gym", "farmacia", "medicina",
                "medico", "dentista", "gimnasio",
            ],
        ),
        (
            "entertainment",
            &[
                "movie",
                "movies",
                "cinema",
                "cine",
                "concert",
                "concierto",
                "netflix",
                "games",
                "juegos",
                "teatro",
                "theater",
            ],
        ),
        (
            "shopping",
            &[
                "clothes", "shoes", "ropa", "zapatos", "amazon", "gift", "regalo",
            ],
        ),
    ];
    let words: Vec<String> = description.split_whitespace().map(normalize).collect();
    CATEGORIES
        .iter()
        .find(|(_, keys)| words.iter().any(|w| keys.contains(&w.as_str())))
        .map(|(name, _)| *name)
        .unwrap_or("other")
}

// ---------------------------------------------------------------------------------------------
// remind me to call mom tomorrow at 9
// ---------------------------------------------------------------------------------------------

fn create_reminder(tokens: &[Token], words: &[&str], context: &Context) -> Option<Parse> {
    let triggers: &[(&[&str], Lang)] = &[
        (&["remind", "me"], Lang::En),
        (&["please", "remind", "me"], Lang::En),
        (&["reminder"], Lang::En),
        (&["set", "a", "reminder"], Lang::En),
        (&["set", "reminder"], Lang::En),
        (&["recuerdame"], Lang::Es),
        (&["recordarme"], Lang::Es),
        (&["recordatorio"], Lang::Es),
        (&["avisame"], Lang::Es),
        (&["pon", "un", "recordatorio"], Lang::Es),
    ];
    let (prefix, lang) = triggers
        .iter()
        .filter(|(prefix, _)| starts_with(words, prefix))
        .max_by_key(|(prefix, _)| prefix.len())?;
    let (lang, prefix_len) = (*lang, prefix.len());
    let rest = &tokens[prefix_len..];
    let rest_words = &words[prefix_len..];
    let found = match when::find(rest_words) {
        Ok(found) => found,
        Err(what) => return unclear(lang, what),
    };
    let leftover: Vec<&Token> = rest
        .iter()
        .enumerate()
        .filter(|(i, _)| !found.consumed.contains(i))
        .map(|(_, t)| t)
        .collect();
    let leftover_words: Vec<&str> = leftover.iter().map(|t| t.word.as_str()).collect();
    if when::has_vague_time(&leftover_words) {
        return unclear(lang, Unclear::ReminderNeedsTime);
    }
    let due = match found.spec.resolve(context.now, context.tz) {
        Ok(due) => due,
        Err(what) => return unclear(lang, what),
    };
    let connectors = ["to", "that", "about", "of", "que", "de", "para", "a", "me"];
    let start = leftover
        .iter()
        .position(|t| !connectors.contains(&t.word.as_str()))
        .unwrap_or(leftover.len());
    let task = &leftover[start..];
    if task.is_empty() {
        return unclear(lang, Unclear::ReminderNeedsText);
    }
    command(
        lang,
        Command::CreateReminder {
            text: as_written(task),
            due,
            recurrence: found.spec.recurrence,
        },
    )
}
