//! The parser's phrasebook: every row is a message, where and when it is written, and what the
//! parser must make of it (including what it must refuse to guess).

use super::*;
use crate::domain::Recurrence::{Daily, Monthly, Weekly};

const NY: &str = "America/New_York";
const MADRID: &str = "Europe/Madrid";
/// Friday 2026-03-06, 10:00 in New York (EST); the US moves to EDT on Sunday 03-08.
const NOW_NY: &str = "2026-03-06T15:00:00Z";
/// Friday 2026-03-06, 10:00 in Madrid (CET).
const NOW_MADRID: &str = "2026-03-06T09:00:00Z";
/// Friday 2026-03-27, 10:00 in Madrid (CET); Spain moves to CEST on Sunday 03-29.
const NOW_MADRID_DST: &str = "2026-03-27T09:00:00Z";

#[derive(Debug)]
enum Want {
    Reminder(&'static str, &'static str, Recurrence),
    List,
    Cancel(u32),
    Expense(i64, &'static str, &'static str, Option<&'static str>),
    Summary(Period),
    Help,
    Refuse(Unclear),
    Nothing,
}

use Want::*;

fn once(text: &'static str, due: &'static str) -> Want {
    Reminder(text, due, Recurrence::None)
}

#[rustfmt::skip]
fn phrasebook() -> Vec<(&'static str, &'static str, &'static str, Want)> {
    vec![
        // English reminders, New York, Friday 10:00 EST.
        ("remind me to call mom tomorrow at 9", NY, NOW_NY, once("call mom", "2026-03-07T14:00:00Z")),
        ("remind me to stretch in 10 minutes", NY, NOW_NY, once("stretch", "2026-03-06T15:10:00Z")),
        ("Remind me in 2 hours to check the oven", NY, NOW_NY, once("check the oven", "2026-03-06T17:00:00Z")),
        ("remind me to pay rent on sunday at 9am", NY, NOW_NY, once("pay rent", "2026-03-08T13:00:00Z")),
        ("remind me to water the plants every day at 8pm", NY, NOW_NY, Reminder("water the plants", "2026-03-07T01:00:00Z", Daily)),
        ("remind me to take out the trash every monday at 7:30", NY, NOW_NY, Reminder("take out the trash", "2026-03-09T11:30:00Z", Weekly)),
        ("remind me to pay the card every month on the 15th", NY, NOW_NY, Reminder("pay the card", "2026-03-15T13:00:00Z", Monthly)),
        ("remind me at 3pm to call the dentist", NY, NOW_NY, once("call the dentist", "2026-03-06T20:00:00Z")),
        ("remind me tonight at 8 to buy milk", NY, NOW_NY, once("buy milk", "2026-03-07T01:00:00Z")),
        ("remind me tomorrow morning to go running", NY, NOW_NY, once("go running", "2026-03-07T14:00:00Z")),
        ("remind me to call John on March 10 at 2:30pm", NY, NOW_NY, once("call John", "2026-03-10T18:30:00Z")),
        ("remind me on 12/25 to buy gifts", NY, NOW_NY, once("buy gifts", "2026-12-25T14:00:00Z")),
        ("remind me to renew my passport on 2026-04-01 at 10:00", NY, NOW_NY, once("renew my passport", "2026-04-01T14:00:00Z")),
        ("remind me the day after tomorrow at noon to pick up the suit", NY, NOW_NY, once("pick up the suit", "2026-03-08T16:00:00Z")),
        ("remind me at 9 to walk the dog", NY, NOW_NY, once("walk the dog", "2026-03-07T14:00:00Z")),
        ("Remind me to call mom at 8 in the evening", NY, NOW_NY, once("call mom", "2026-03-07T01:00:00Z")),
        ("remind me in an hour to stretch", NY, NOW_NY, once("stretch", "2026-03-06T16:00:00Z")),
        ("remind me in half an hour to check email", NY, NOW_NY, once("check email", "2026-03-06T15:30:00Z")),
        ("set a reminder to submit the report friday at 5pm", NY, NOW_NY, once("submit the report", "2026-03-06T22:00:00Z")),
        ("remind me in 3 days to follow up", NY, NOW_NY, once("follow up", "2026-03-09T14:00:00Z")),
        ("remind me to take my pills daily at 21:00", NY, NOW_NY, Reminder("take my pills", "2026-03-07T02:00:00Z", Daily)),
        ("remind me to call the bank next tuesday at 11", NY, NOW_NY, once("call the bank", "2026-03-10T15:00:00Z")),
        ("remind me to stretch every day", NY, NOW_NY, Reminder("stretch", "2026-03-07T14:00:00Z", Daily)),
        ("remind me to check the clocks on sunday at 2:30am", NY, NOW_NY, once("check the clocks", "2026-03-08T07:30:00Z")),
        ("remind me to buy bread, eggs and milk at 6pm!", NY, NOW_NY, once("buy bread, eggs and milk", "2026-03-06T23:00:00Z")),
        ("reminder: dentist appointment on monday at 16:45", NY, NOW_NY, once("dentist appointment", "2026-03-09T20:45:00Z")),
        // Other time zones.
        ("remind me to call Tanaka tomorrow at 9", "Asia/Tokyo", NOW_NY, once("call Tanaka", "2026-03-08T00:00:00Z")),
        ("remind me at 23:59 to sleep", "UTC", NOW_NY, once("sleep", "2026-03-06T23:59:00Z")),
        ("remind me to feed the cat at 7am", "Not/AZone", NOW_NY, once("feed the cat", "2026-03-07T07:00:00Z")),
        // Spanish reminders, Madrid, Friday 10:00 CET.
        ("recuérdame pagar la luz el viernes", MADRID, NOW_MADRID, once("pagar la luz", "2026-03-13T08:00:00Z")),
        ("recuérdame llamar a mamá mañana a las 9", MADRID, NOW_MADRID, once("llamar a mamá", "2026-03-07T08:00:00Z")),
        ("Recuérdame mañana a las 9 de la noche sacar la basura", MADRID, NOW_MADRID, once("sacar la basura", "2026-03-07T20:00:00Z")),
        ("recuerdame en 10 minutos estirar", MADRID, NOW_MADRID, once("estirar", "2026-03-06T09:10:00Z")),
        ("recuérdame dentro de 2 horas revisar el horno", MADRID, NOW_MADRID, once("revisar el horno", "2026-03-06T11:00:00Z")),
        ("recuérdame en media hora llamar a Juan", MADRID, NOW_MADRID, once("llamar a Juan", "2026-03-06T09:30:00Z")),
        ("recuérdame ir al gimnasio todos los lunes a las 7", MADRID, NOW_MADRID, Reminder("ir al gimnasio", "2026-03-09T06:00:00Z", Weekly)),
        ("recuérdame tomar agua todos los días a las 10", MADRID, NOW_MADRID, Reminder("tomar agua", "2026-03-07T09:00:00Z", Daily)),
        ("recuérdame pagar el alquiler cada mes el 1", MADRID, NOW_MADRID, Reminder("pagar el alquiler", "2026-04-01T07:00:00Z", Monthly)),
        ("recuérdame el 25 de diciembre comprar turrón", MADRID, NOW_MADRID, once("comprar turrón", "2026-12-25T08:00:00Z")),
        ("recuérdame esta tarde a las 5 llamar al médico", MADRID, NOW_MADRID, once("llamar al médico", "2026-03-06T16:00:00Z")),
        ("recuérdame pasado mañana a mediodía recoger el coche", MADRID, NOW_MADRID, once("recoger el coche", "2026-03-08T11:00:00Z")),
        ("avísame a las 18:30 que salga a correr", MADRID, NOW_MADRID, once("salga a correr", "2026-03-06T17:30:00Z")),
        ("recuérdame que mañana por la tarde tengo dentista", MADRID, NOW_MADRID, once("tengo dentista", "2026-03-07T14:00:00Z")),
        ("recuérdame comprar flores el 8 de marzo a las 10", MADRID, NOW_MADRID, once("comprar flores", "2026-03-08T09:00:00Z")),
        // Across Spain's change to summer time (Sunday 2026-03-29).
        ("recuérdame llamar a Ana pasado mañana a las 9", MADRID, NOW_MADRID_DST, once("llamar a Ana", "2026-03-29T07:00:00Z")),
        ("remind me to call Ana tomorrow at 9", MADRID, NOW_MADRID_DST, once("call Ana", "2026-03-28T08:00:00Z")),
        ("recuérdame regar las plantas el domingo a las 2:30", MADRID, NOW_MADRID_DST, once("regar las plantas", "2026-03-29T01:30:00Z")),
        ("remind me in 3 days to water the plants", MADRID, NOW_MADRID_DST, once("water the plants", "2026-03-30T08:00:00Z")),
        // Reminders it must refuse to guess.
        ("remind me to call mom", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me to call mom later", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me next week to renew the insurance", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me to call mom on 3/4 at 9", NY, NOW_NY, Refuse(Unclear::AmbiguousDate)),
        ("remind me to pay on february 30", NY, NOW_NY, Refuse(Unclear::InvalidDateOrTime)),
        ("remind me at 25:00 to sleep", NY, NOW_NY, Refuse(Unclear::InvalidDateOrTime)),
        ("remind me at 13pm to eat", NY, NOW_NY, Refuse(Unclear::InvalidDateOrTime)),
        ("remind me to call mom today at 8am", NY, NOW_NY, Refuse(Unclear::InThePast)),
        ("remind me to call mom tomorrow on friday", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me to call mom yesterday at 9", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me every 2 days to water the cactus", NY, NOW_NY, Refuse(Unclear::ReminderNeedsTime)),
        ("remind me tomorrow at 9", NY, NOW_NY, Refuse(Unclear::ReminderNeedsText)),
        ("recuérdame llamar a mamá más tarde", MADRID, NOW_MADRID, Refuse(Unclear::ReminderNeedsTime)),
        ("recuérdame algo", MADRID, NOW_MADRID, Refuse(Unclear::ReminderNeedsTime)),
        ("recuérdame pagar el seguro el fin de semana", MADRID, NOW_MADRID, Refuse(Unclear::ReminderNeedsTime)),
        ("recuérdame el lunes a las 9", MADRID, NOW_MADRID, Refuse(Unclear::ReminderNeedsText)),
        ("recuérdame en un rato sacar al perro", MADRID, NOW_MADRID, Refuse(Unclear::ReminderNeedsTime)),
        // Reminder lists and cancellations.
        ("my reminders", NY, NOW_NY, List),
        ("Mis recordatorios", MADRID, NOW_MADRID, List),
        ("show my reminders please", NY, NOW_NY, List),
        ("cancel reminder 2", NY, NOW_NY, Cancel(2)),
        ("cancela el recordatorio 3", MADRID, NOW_MADRID, Cancel(3)),
        ("delete reminder #4", NY, NOW_NY, Cancel(4)),
        ("cancel reminder", NY, NOW_NY, Refuse(Unclear::CancelNeedsNumber)),
        ("cancel reminder two", NY, NOW_NY, Refuse(Unclear::CancelNeedsNumber)),
        ("borrar recordatorio 0", MADRID, NOW_MADRID, Refuse(Unclear::CancelNeedsNumber)),
        ("cancel my subscription", NY, NOW_NY, Nothing),
        // Expenses.
        ("spent 12.50 on lunch", NY, NOW_NY, Expense(1250, "USD", "food", Some("lunch"))),
        ("gasté 20 en taxi", MADRID, NOW_MADRID, Expense(2000, "EUR", "transport", Some("taxi"))),
        ("I spent $30 on groceries", NY, NOW_NY, Expense(3000, "USD", "groceries", Some("groceries"))),
        ("spent 15 eur on a taxi", NY, NOW_NY, Expense(1500, "EUR", "transport", Some("a taxi"))),
        ("gasté 12,50 € en comida", MADRID, NOW_MADRID, Expense(1250, "EUR", "food", Some("comida"))),
        ("he gastado 40 euros en el súper", MADRID, NOW_MADRID, Expense(4000, "EUR", "groceries", Some("el súper"))),
        ("paid 60 for the electricity bill", NY, NOW_NY, Expense(6000, "USD", "utilities", Some("the electricity bill"))),
        ("spent 9.99", NY, NOW_NY, Expense(999, "USD", "other", None)),
        ("spent €8 on coffee", NY, NOW_NY, Expense(800, "EUR", "food", Some("coffee"))),
        ("pagué 35 de gasolina", MADRID, NOW_MADRID, Expense(3500, "EUR", "transport", Some("gasolina"))),
        ("spent 25 on a birthday present", NY, NOW_NY, Expense(2500, "USD", "other", Some("a birthday present"))),
        ("spent on lunch", NY, NOW_NY, Refuse(Unclear::ExpenseNeedsAmount)),
        ("spent 1,234 on a laptop", NY, NOW_NY, Refuse(Unclear::ExpenseNeedsAmount)),
        ("gasté mucho en la cena", MADRID, NOW_MADRID, Refuse(Unclear::ExpenseNeedsAmount)),
        // Expense summaries.
        ("expenses this month", NY, NOW_NY, Summary(Period::ThisMonth)),
        ("my expenses", NY, NOW_NY, Summary(Period::ThisMonth)),
        ("expenses today", NY, NOW_NY, Summary(Period::Today)),
        ("How much did I spend this week?", NY, NOW_NY, Summary(Period::ThisWeek)),
        ("expenses last month", NY, NOW_NY, Summary(Period::LastMonth)),
        ("gastos de este mes", MADRID, NOW_MADRID, Summary(Period::ThisMonth)),
        ("mis gastos del mes pasado", MADRID, NOW_MADRID, Summary(Period::LastMonth)),
        ("¿cuánto gasté esta semana?", MADRID, NOW_MADRID, Summary(Period::ThisWeek)),
        ("expenses in 2019", NY, NOW_NY, Refuse(Unclear::SummaryNeedsPeriod)),
        // Help, and what is not a command.
        ("help", NY, NOW_NY, Help),
        ("ayuda", MADRID, NOW_MADRID, Help),
        ("What can you do?", NY, NOW_NY, Help),
        ("hello", NY, NOW_NY, Nothing),
        ("what's the weather like?", NY, NOW_NY, Nothing),
        ("hola, ¿qué tal?", MADRID, NOW_MADRID, Nothing),
        ("can you remind me about the meeting?", NY, NOW_NY, Nothing),
        ("", NY, NOW_NY, Nothing),
    ]
}

fn context(tz: &str, now: &str) -> Context {
    Context {
        now: now.parse().expect("now"),
        tz: crate::assistant::time::zone(tz),
        currency: Currency::for_locale(Some(if tz == MADRID { "es_ES" } else { "en_US" })),
    }
}

fn matches(parsed: &Parsed, want: &Want) -> bool {
    match (parsed, want) {
        (
            Parsed::Command(Command::CreateReminder {
                text,
                due,
                recurrence,
            }),
            Reminder(want_text, want_due, want_recurrence),
        ) => {
            text == want_text
                && due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) == *want_due
                && recurrence == want_recurrence
        }
        (Parsed::Command(Command::ListReminders), List) => true,
        (Parsed::Command(Command::CancelReminder { number }), Cancel(n)) => number == n,
        (
            Parsed::Command(Command::LogExpense {
                amount,
                currency,
                category,
                note,
            }),
            Expense(cents, code, want_category, want_note),
        ) => {
            amount.cents() == *cents
                && currency.as_str() == *code
                && category == want_category
                && note.as_deref() == *want_note
        }
        (Parsed::Command(Command::ExpenseSummary { period }), Summary(p)) => period == p,
        (Parsed::Command(Command::Help), Help) => true,
        (Parsed::Unclear(what), Refuse(want)) => what == want,
        (Parsed::NotACommand, Nothing) => true,
        _ => false,
    }
}

#[test]
fn the_phrasebook_is_understood_or_refused_as_written() {
    let book = phrasebook();
    assert!(book.len() >= 60, "at least 60 phrasings");
    let failures: Vec<String> = book
        .iter()
        .filter_map(|(phrase, tz, now, want)| {
            let got = parse(phrase, &context(tz, now));
            (!matches(&got.parsed, want))
                .then(|| format!("{phrase:?} ({tz}): got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} phrasings wrong:\n{}",
        failures.len(),
        book.len(),
        failures.join("\n")
    );
}

#[test]
fn the_language_of_a_command_is_the_language_it_was_written_in() {
    let lang = |phrase| parse(phrase, &context(MADRID, NOW_MADRID)).lang;
    assert_eq!(lang("recuérdame pagar la luz el viernes"), Some(Lang::Es));
    assert_eq!(lang("remind me to pay the bill on friday"), Some(Lang::En));
    assert_eq!(lang("gasté 20 en taxi"), Some(Lang::Es));
    assert_eq!(lang("hola"), None);
}

/// Numbers too large for a duration are refused, never a panic (issue 11).
#[test]
fn huge_counts_are_refused() {
    let context = Context {
        now: NOW_NY.parse().expect("now"),
        tz: NY.parse().expect("tz"),
        currency: Currency::for_locale(Some("en_US")),
    };
    for text in [
        "remind me in 999999999999999min to x",
        "remind me in 999999999999999 minutes to x",
        "remind me in 99999999999999999999999999h to x",
        "remind me in 9223372036854775807 weeks to x",
        "recuérdame en 5000 días llamar",
        "remind me in 1001 hours to x",
        "remind me on 25/12/999999 to x",
        "remind me on 2200-01-01 to x",
    ] {
        assert_eq!(
            parse(text, &context).parsed,
            Parsed::Unclear(Unclear::InvalidDateOrTime),
            "{text}"
        );
    }
    assert_eq!(
        parse("remind me on 25/12/1999 to x", &context).parsed,
        Parsed::Unclear(Unclear::InThePast)
    );
}
