//! Property: no message makes the parser panic (issue 11). Messages are built from the words
//! the parser looks for (English and Spanish triggers, units, months, weekdays), numbers of
//! every size, dates real and impossible, and hostile characters: Unicode digits, control
//! characters, NUL, emoji, RTL and other invisible marks. Each is parsed in several time
//! zones at several instants (DST changes, the end of a year, the end of the century).

use proptest::prelude::*;

use super::*;
use crate::domain::Currency;

/// Cases per run; with the delivery parser's properties (`whatsapp::payload`) the suite feeds
/// over 10,000 generated inputs.
pub const CASES: u32 = 6_000;

const WORDS: &[&str] = &[
    "remind",
    "me",
    "remind me",
    "recuérdame",
    "recuerdame",
    "recordatorio",
    "avísame",
    "pon un recordatorio",
    "set a reminder",
    "reminder",
    "to",
    "que",
    "de",
    "a",
    "in",
    "en",
    "dentro de",
    "within",
    "at",
    "a las",
    "a la",
    "@",
    "around",
    "el",
    "the",
    "on",
    "this",
    "next",
    "próximo",
    "every",
    "each",
    "cada",
    "todos los",
    "daily",
    "weekly",
    "monthly",
    "min",
    "mins",
    "minute",
    "minutes",
    "minuto",
    "minutos",
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "hora",
    "horas",
    "day",
    "days",
    "día",
    "días",
    "dia",
    "dias",
    "week",
    "weeks",
    "semana",
    "semanas",
    "half an hour",
    "media hora",
    "a couple of",
    "un par de",
    "am",
    "pm",
    "a.m",
    "p.m",
    "o'clock",
    "en punto",
    "noon",
    "midnight",
    "mediodía",
    "medianoche",
    "morning",
    "tonight",
    "esta noche",
    "de la tarde",
    "por la mañana",
    "in the evening",
    "at night",
    "today",
    "hoy",
    "tomorrow",
    "mañana",
    "pasado mañana",
    "day after tomorrow",
    "monday",
    "lunes",
    "friday",
    "viernes",
    "sábados",
    "domingo",
    "mondays",
    "january",
    "feb",
    "marzo",
    "diciembre",
    "december",
    "sept",
    "of",
    "1st",
    "2nd",
    "3rd",
    "25th",
    "31st",
    "1º",
    "32nd",
    "una",
    "dos",
    "twenty",
    "veinte",
    "spent",
    "i spent",
    "paid",
    "gasté",
    "gaste",
    "pagué",
    "he gastado",
    "expense",
    "gasto",
    "$",
    "€",
    "£",
    "usd",
    "eur",
    "euros",
    "pesos",
    "dollars",
    "on",
    "for",
    "lunch",
    "taxi",
    "cancel",
    "cancela",
    "borra",
    "delete",
    "reminder",
    "number",
    "#",
    "nº",
    "my reminders",
    "mis recordatorios",
    "help",
    "ayuda",
    "expenses",
    "gastos",
    "how much did i spend",
    "cuánto gasté",
    "this month",
    "last week",
    "el mes pasado",
    "este año",
    "please",
    "por favor",
    "gracias",
    "later",
    "luego",
    "next week",
    "fin de semana",
    ",",
    ".",
    "!",
    "¿",
    "?",
    "«",
    "»",
    "“",
    "”",
    "'",
    "(",
    ")",
];

/// Characters that break naive code: Unicode digits, controls, NUL, emoji, marks.
const ODD: &[&str] = &[
    "٣",
    "٠١٢",
    "３",
    "１２：３０",
    "੩",
    "߃",
    "¹",
    "½",
    "Ⅻ",
    "\0",
    "\u{1}",
    "\u{7}",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{200b}",
    "\u{200e}",
    "\u{200f}",
    "\u{202e}",
    "\u{2066}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "😀",
    "👨‍👩‍👧",
    "🇪🇸",
    "é",
    "e\u{301}",
    "ß",
    "İ",
    "ǅ",
    "ﬃ",
    "\u{3000}",
    "\t",
    "\r\n",
    "%s",
    "{}",
    "\\",
    "\"",
    "\u{e000}",
];

fn digits(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..10, 1..=max)
        .prop_map(|ds| ds.into_iter().map(|d| char::from(b'0' + d)).collect())
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..40).prop_map(|n| n.to_string()),
        (0u32..=1500).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        digits(40),
        (any::<u32>(), 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        (any::<u32>(), 0u32..100).prop_map(|(a, b)| format!("{a},{b:02}")),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
}

fn date() -> impl Strategy<Value = String> {
    let part = prop_oneof![0i64..40, -5i64..5, any::<i32>().prop_map(i64::from)];
    let year = prop_oneof![
        1990i64..2110,
        0i64..100,
        any::<i32>().prop_map(i64::from),
        Just(262_143),
        Just(-262_144)
    ];
    (part.clone(), part, year, 0u8..6).prop_map(|(a, b, y, form)| match form {
        0 => format!("{a}/{b}"),
        1 => format!("{a}/{b}/{y}"),
        2 => format!("{y}-{a:02}-{b:02}"),
        3 => format!("{y:+}-{a}-{b}"),
        4 => format!("{a}:{b:02}"),
        _ => format!("{a}/{b}/{y}/{a}"),
    })
}

fn glued() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(&["min", "mins", "h", "hr", "hrs", "am", "pm", "h30", "º"][..]);
    (number(), unit).prop_map(|(n, u)| format!("{n}{u}"))
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_string),
        2 => number(),
        1 => date(),
        1 => glued(),
        1 => prop::sample::select(ODD).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => (prop::sample::select(WORDS), prop::sample::select(ODD))
            .prop_map(|(w, odd)| format!("{w}{odd}")),
    ]
}

const TRIGGERS: &[&str] = &[
    "remind me",
    "Remind me",
    "recuérdame",
    "avísame",
    "set a reminder",
    "pon un recordatorio",
    "spent",
    "gasté",
    "paid",
    "cancel reminder",
    "cancela el recordatorio",
    "expenses",
    "gastos de",
    "how much did i spend",
];

const LEADS: &[&str] = &[
    "in",
    "en",
    "dentro de",
    "within",
    "at",
    "a las",
    "el",
    "on",
    "on the",
    "every",
    "cada",
    "todos los",
    "",
    "this",
    "next",
];

const UNITS: &[&str] = &[
    "min",
    "mins",
    "minutes",
    "minutos",
    "h",
    "hours",
    "horas",
    "days",
    "días",
    "dias",
    "weeks",
    "semanas",
    "am",
    "pm",
    "de diciembre",
    "of march",
    "december",
    "de la tarde",
    "",
];

/// A time expression as the parser reads them: a lead, a number, a date or a word, a unit.
fn time_expression() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        number(),
        date(),
        glued(),
        prop::sample::select(WORDS).prop_map(str::to_string)
    ];
    (
        prop::sample::select(LEADS),
        value,
        prop::sample::select(UNITS),
    )
        .prop_map(|(lead, value, unit)| format!("{lead} {value} {unit}"))
}

/// A command-shaped message: a trigger, time expressions and words in some order.
fn shaped() -> impl Strategy<Value = String> {
    let piece = prop_oneof![2 => time_expression(), 1 => fragment()];
    (
        prop::sample::select(TRIGGERS),
        prop::collection::vec(piece, 0..5),
    )
        .prop_map(|(trigger, pieces)| format!("{trigger} {}", pieces.join(" ")))
}

/// A message: command-shaped, or fragments joined by ordinary or odd separators.
pub fn message() -> impl Strategy<Value = String> {
    let separator = prop::sample::select(&[" ", " ", " ", "", "\n", "\t", "\u{3000}", "\u{0}"][..]);
    let free = prop::collection::vec((fragment(), separator), 0..14).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(f, s)| [f, s.to_string()])
            .collect()
    });
    prop_oneof![3 => shaped(), 1 => free]
}

fn context() -> impl Strategy<Value = Context> {
    const ZONES: &[&str] = &[
        "America/New_York",
        "Europe/Madrid",
        "America/Mexico_City",
        "Asia/Kolkata",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "UTC",
    ];
    const NOWS: &[&str] = &[
        "2026-03-06T15:00:00Z",
        "2026-03-29T00:30:00Z",
        "2026-11-01T05:30:00Z",
        "2026-12-31T23:59:59Z",
        "2099-12-31T23:00:00Z",
        "2100-12-31T23:59:59Z",
    ];
    (
        prop::sample::select(ZONES),
        prop::sample::select(NOWS),
        prop::sample::select(&["en_US", "es_ES", "es_MX", "en_GB"][..]),
    )
        .prop_map(|(zone, now, locale)| Context {
            now: now.parse().unwrap_or_default(),
            tz: zone.parse().unwrap_or(chrono_tz::UTC),
            currency: Currency::for_locale(Some(locale)),
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    })]

    #[test]
    fn no_message_makes_the_parser_panic(text in message(), context in context()) {
        let parse = parse(&text, &context);
        let _ = category_of(&text);
        if let Parsed::Command(Command::CreateReminder { due, text: task, .. }) = &parse.parsed {
            prop_assert!(*due > context.now, "{text:?} gave a past time {due}");
            prop_assert!(!task.is_empty());
        }
    }
}
