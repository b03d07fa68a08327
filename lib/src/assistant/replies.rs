//! The assistant's own words, in English and Spanish, always in the contact's language
//! (`Contact::lang`): the STOP/START confirmations and the rate-limit notice, help, what a
//! command lacks, tool confirmations (when the command parser answers, or a provider fails
//! after tools ran), and the polite answers for what it cannot do.

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde_json::Value;

use super::ledger::Ledger;
use super::parser::{Lang, Unclear};
use super::tools::{parse_local_iso, ToolError};

fn pick(lang: Lang, en: &str, es: &str) -> String {
    match lang {
        Lang::En => en,
        Lang::Es => es,
    }
    .to_string()
}

/// What the assistant understands without AI.
pub fn help(lang: Lang) -> String {
    pick(
        lang,
        "I can help with:\n\
         ⏰ “remind me to call mom tomorrow at 9” · “remind me to stretch in 10 minutes” · \
         “remind me to water the plants every day at 8pm”\n\
         📋 “my reminders” · “cancel reminder 2”\n\
         💸 “spent 12.50 on lunch” · “expenses this month”",
        "Puedo ayudarte con:\n\
         ⏰ «recuérdame llamar a mamá mañana a las 9» · «recuérdame estirar en 10 minutos» · \
         «recuérdame regar las plantas todos los días a las 20»\n\
         📋 «mis recordatorios» · «cancela el recordatorio 2»\n\
         💸 «gasté 20 en taxi» · «gastos de este mes»",
    )
}

/// The confirmation of STOP (the contact is opted out).
pub fn opted_out(lang: Lang) -> String {
    pick(
        lang,
        "You will not receive more messages from us. Reply START to subscribe again.",
        "No recibirás más mensajes nuestros. Responde ALTA para volver a suscribirte.",
    )
}

/// The confirmation of START (the contact is opted in again).
pub fn opted_in(lang: Lang) -> String {
    pick(
        lang,
        "Welcome back! You are subscribed again.",
        "¡Bienvenido de nuevo! Vuelves a estar suscrito.",
    )
}

/// The one notice when a contact first passes the org's rate limit.
pub fn rate_limited(lang: Lang) -> String {
    pick(
        lang,
        "You are sending messages very quickly. Please wait a minute and try again.",
        "Estás enviando mensajes muy rápido. Espera un minuto y vuelve a intentarlo.",
    )
}

/// The answer to a contact's first open of the chat (`request_welcome`) when the org set no
/// `welcome_message`.
pub fn welcome(lang: Lang) -> String {
    pick(
        lang,
        "Hi! 👋 I'm your assistant. I can set reminders, log expenses and answer questions. \
         Just write to me. Reply STOP at any time to stop receiving messages.",
        "¡Hola! 👋 Soy tu asistente. Puedo crear recordatorios, apuntar gastos y responder \
         preguntas. Escríbeme sin más. Responde BAJA en cualquier momento para no recibir \
         más mensajes.",
    )
}

/// The acknowledgement of an order, with its summary (items and total).
pub fn order_received(lang: Lang, summary: Option<&str>) -> String {
    let intro = pick(
        lang,
        "Thank you, we received your order",
        "Gracias, hemos recibido tu pedido",
    );
    match summary {
        Some(summary) => format!("{intro} ({summary})."),
        None => format!("{intro}."),
    }
}

/// A message that is not a command, answered without AI.
pub fn not_understood(lang: Lang, limited: bool) -> String {
    let intro = match (lang, limited) {
        (Lang::En, true) => "I can only handle simple commands right now.",
        (Lang::Es, true) => "Ahora mismo solo puedo atender órdenes sencillas.",
        (Lang::En, false) => "I didn't catch that.",
        (Lang::Es, false) => "No te he entendido.",
    };
    format!("{intro} {}", help(lang))
}

/// What a recognised command lacks, and how to say it.
pub fn unclear(lang: Lang, what: Unclear) -> String {
    let (en, es) = match what {
        Unclear::ReminderNeedsTime => (
            "When should I remind you? Tell me one exact day and time, e.g. “remind me to call mom tomorrow at 9”.",
            "¿Cuándo te lo recuerdo? Dime un día y una hora exactos, p. ej. «recuérdame llamar a mamá mañana a las 9».",
        ),
        Unclear::ReminderNeedsText => (
            "What should I remind you of? e.g. “remind me to call mom tomorrow at 9”.",
            "¿Qué te recuerdo? P. ej. «recuérdame llamar a mamá mañana a las 9».",
        ),
        Unclear::InThePast => (
            "That time has already passed. Which day and time do you mean?",
            "Esa hora ya ha pasado. ¿Qué día y a qué hora?",
        ),
        Unclear::AmbiguousDate => (
            "Which date do you mean? Write the month as a word, e.g. “4 March” or “March 4”.",
            "¿Qué fecha? Escribe el mes con letras, p. ej. «4 de marzo».",
        ),
        Unclear::InvalidDateOrTime => (
            "That date or time doesn't exist. Could you check it?",
            "Esa fecha u hora no existe. ¿Puedes revisarla?",
        ),
        Unclear::CancelNeedsNumber => (
            "Which reminder? Send “my reminders” to see their numbers, then e.g. “cancel reminder 2”.",
            "¿Qué recordatorio? Envía «mis recordatorios» para ver sus números y luego p. ej. «cancela el recordatorio 2».",
        ),
        Unclear::ExpenseNeedsAmount => (
            "How much did you spend? e.g. “spent 12.50 on lunch”.",
            "¿Cuánto gastaste? P. ej. «gasté 12,50 en comida».",
        ),
        Unclear::SummaryNeedsPeriod => (
            "For which period? today, yesterday, this week, last week, this month, last month or this year.",
            "¿De qué periodo? hoy, ayer, esta semana, la semana pasada, este mes, el mes pasado o este año.",
        ),
    };
    pick(lang, en, es)
}

pub fn audio_unsupported(lang: Lang) -> String {
    pick(
        lang,
        "Sorry, I can't listen to voice notes yet. Could you write your message?",
        "Lo siento, todavía no puedo escuchar notas de voz. ¿Puedes escribir tu mensaje?",
    )
}

pub fn audio_failed(lang: Lang) -> String {
    pick(
        lang,
        "Sorry, I couldn't understand that voice note. Could you write it instead?",
        "Lo siento, no he podido entender la nota de voz. ¿Puedes escribirla?",
    )
}

pub fn media_unsupported(lang: Lang) -> String {
    pick(
        lang,
        "Sorry, I can only read text messages for now.",
        "Lo siento, por ahora solo puedo leer mensajes de texto.",
    )
}

pub fn sorry(lang: Lang) -> String {
    pick(
        lang,
        "Sorry, I couldn't do that right now. Please try again in a moment.",
        "Lo siento, no he podido hacerlo ahora. Inténtalo de nuevo en un momento.",
    )
}

/// Why a tool did not act, for the contact.
pub fn tool_failed(lang: Lang, error: &ToolError) -> String {
    match error {
        ToolError::NotFound(_) => pick(
            lang,
            "I couldn't find that reminder. Send “my reminders” to see their numbers.",
            "No encuentro ese recordatorio. Envía «mis recordatorios» para ver sus números.",
        ),
        ToolError::Disabled(_) => pick(
            lang,
            "That isn't available here, sorry.",
            "Eso no está disponible aquí, lo siento.",
        ),
        _ => sorry(lang),
    }
}

/// What the successful tools of a turn did, one line each (`None` when none succeeded).
pub fn summary(lang: Lang, ledger: &Ledger) -> Option<String> {
    let lines: Vec<String> = ledger
        .tool_executions
        .iter()
        .filter(|t| t.status == "success" && !super::tools::reply::is_reply_tool(&t.tool))
        .filter_map(|t| Some(confirm(lang, &t.tool, t.output.as_ref()?)))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// A tool's output, told to the contact.
pub fn confirm(lang: Lang, tool: &str, output: &Value) -> String {
    match tool {
        "create_reminder" => reminder_created(lang, &output["reminder"]),
        "list_reminders" => reminders_listed(lang, &output["reminders"]),
        "cancel_reminder" => {
            let reminder = &output["cancelled"];
            let text = reminder["text"].as_str().unwrap_or_default();
            match (lang, reminder["number"].as_i64()) {
                (Lang::En, Some(n)) => format!("🗑️ Cancelled reminder {n}: “{text}”."),
                (Lang::Es, Some(n)) => format!("🗑️ Recordatorio {n} cancelado: «{text}»."),
                (Lang::En, None) => format!("🗑️ Cancelled reminder: “{text}”."),
                (Lang::Es, None) => format!("🗑️ Recordatorio cancelado: «{text}»."),
            }
        }
        "log_expense" => expense_logged(lang, &output["expense"]),
        "expense_summary" => expenses_summed(lang, output),
        "create_calendar_event" => {
            let event = &output["event"];
            let title = event["title"].as_str().unwrap_or_default();
            let when = local(lang, &event["start_local"]);
            match lang {
                Lang::En => format!("📅 Added to your calendar: “{title}”, {when}."),
                Lang::Es => format!("📅 Añadido a tu calendario: «{title}», {when}."),
            }
        }
        "list_calendar_events" => events_listed(lang, &output["events"]),
        _ => pick(lang, "Done.", "Hecho."),
    }
}

fn reminder_created(lang: Lang, reminder: &Value) -> String {
    let text = reminder["text"].as_str().unwrap_or_default();
    let when = local(lang, &reminder["due_local"]);
    let repeat = repeat(lang, reminder["recurrence"].as_str().unwrap_or("none"));
    match lang {
        Lang::En => format!("⏰ Reminder set: “{text}”, {when}{repeat}."),
        Lang::Es => format!("⏰ Recordatorio creado: «{text}», {when}{repeat}."),
    }
}

fn repeat(lang: Lang, recurrence: &str) -> &'static str {
    match (lang, recurrence) {
        (Lang::En, "daily") => ", every day",
        (Lang::En, "weekly") => ", every week",
        (Lang::En, "monthly") => ", every month",
        (Lang::Es, "daily") => ", todos los días",
        (Lang::Es, "weekly") => ", todas las semanas",
        (Lang::Es, "monthly") => ", todos los meses",
        _ => "",
    }
}

fn reminders_listed(lang: Lang, reminders: &Value) -> String {
    let items = reminders.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return pick(
            lang,
            "You have no pending reminders.",
            "No tienes recordatorios pendientes.",
        );
    }
    let mut lines = vec![pick(lang, "Your reminders:", "Tus recordatorios:")];
    lines.extend(items.iter().map(|r| {
        format!(
            "{}. {} — {}{}",
            r["number"].as_i64().unwrap_or_default(),
            r["text"].as_str().unwrap_or_default(),
            local(lang, &r["due_local"]),
            repeat(lang, r["recurrence"].as_str().unwrap_or("none")),
        )
    }));
    lines.push(pick(
        lang,
        "To cancel one: “cancel reminder 2”.",
        "Para cancelar uno: «cancela el recordatorio 2».",
    ));
    lines.join("\n")
}

fn expense_logged(lang: Lang, expense: &Value) -> String {
    let amount = money(&expense["amount"], &expense["currency"]);
    let category = category(lang, expense["category"].as_str().unwrap_or("other"));
    match lang {
        Lang::En => format!("💸 Logged {amount} ({category})."),
        Lang::Es => format!("💸 Gasto anotado: {amount} ({category})."),
    }
}

fn expenses_summed(lang: Lang, output: &Value) -> String {
    let period = period(lang, output["period"].as_str().unwrap_or_default());
    let totals = output["totals"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if totals.is_empty() {
        return match lang {
            Lang::En => format!("No expenses {period}."),
            Lang::Es => format!("No hay gastos {period}."),
        };
    }
    let mut by_currency: Vec<(String, f64, Vec<String>)> = Vec::new();
    for total in totals {
        let currency = total["currency"].as_str().unwrap_or_default().to_string();
        let amount = number(&total["total"]);
        let line = format!(
            "{} {}",
            category(lang, total["category"].as_str().unwrap_or("other")),
            format_amount(amount)
        );
        match by_currency.iter_mut().find(|(c, _, _)| *c == currency) {
            Some((_, sum, lines)) => {
                *sum += amount;
                lines.push(line);
            }
            None => by_currency.push((currency, amount, vec![line])),
        }
    }
    let parts: Vec<String> = by_currency
        .iter()
        .map(|(currency, sum, lines)| {
            format!("{} {currency} ({})", format_amount(*sum), lines.join(", "))
        })
        .collect();
    match lang {
        Lang::En => format!("💸 Expenses {period}: {}.", parts.join("; ")),
        Lang::Es => format!("💸 Gastos {period}: {}.", parts.join("; ")),
    }
}

fn events_listed(lang: Lang, events: &Value) -> String {
    let items = events.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return pick(lang, "No upcoming events.", "No tienes eventos próximos.");
    }
    let mut lines = vec![pick(lang, "Your events:", "Tus eventos:")];
    lines.extend(items.iter().map(|e| {
        let when = if e["start_local"].is_string() {
            local(lang, &e["start_local"])
        } else {
            e["all_day"].as_str().unwrap_or_default().to_string()
        };
        format!("• {} — {when}", e["title"].as_str().unwrap_or_default())
    }));
    lines.join("\n")
}

/// `Sat 7 Mar, 09:00` / `sáb 7 mar, 09:00` from a tool's local time.
pub fn local(lang: Lang, value: &Value) -> String {
    let Some(time) = value.as_str().and_then(parse_local_iso) else {
        return value.as_str().unwrap_or_default().to_string();
    };
    pretty(lang, time)
}

fn pretty(lang: Lang, time: NaiveDateTime) -> String {
    const DAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const DAYS_ES: [&str; 7] = ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"];
    const MONTHS_EN: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const MONTHS_ES: [&str; 12] = [
        "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic",
    ];
    let (days, months) = match lang {
        Lang::En => (DAYS_EN, MONTHS_EN),
        Lang::Es => (DAYS_ES, MONTHS_ES),
    };
    format!(
        "{} {} {}, {:02}:{:02}",
        days[time.weekday().num_days_from_monday() as usize],
        time.day(),
        months[time.month0() as usize],
        time.hour(),
        time.minute()
    )
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_default()
}

fn format_amount(amount: f64) -> String {
    format!("{amount:.2}")
}

fn money(amount: &Value, currency: &Value) -> String {
    format!(
        "{} {}",
        format_amount(number(amount)),
        currency.as_str().unwrap_or_default()
    )
}

fn category(lang: Lang, name: &str) -> String {
    let spanish = match name {
        "food" => "comida",
        "groceries" => "supermercado",
        "transport" => "transporte",
        "housing" => "vivienda",
        "utilities" => "suministros",
        "health" => "salud",
        "entertainment" => "ocio",
        "shopping" => "compras",
        "other" => "otros",
        other => other,
    };
    pick(lang, name, spanish)
}

fn period(lang: Lang, name: &str) -> String {
    let (en, es) = match name {
        "today" => ("today", "hoy"),
        "yesterday" => ("yesterday", "ayer"),
        "this_week" => ("this week", "esta semana"),
        "last_week" => ("last week", "la semana pasada"),
        "last_month" => ("last month", "el mes pasado"),
        "this_year" => ("this year", "este año"),
        _ => ("this month", "este mes"),
    };
    pick(lang, en, es)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn confirmations_read_naturally_in_both_languages() {
        let reminder = json!({"reminder": {
            "text": "call mom", "due_local": "2026-03-07T09:00", "recurrence": "daily"}});
        assert_eq!(
            confirm(Lang::En, "create_reminder", &reminder),
            "⏰ Reminder set: “call mom”, Sat 7 Mar, 09:00, every day."
        );
        assert_eq!(
            confirm(Lang::Es, "create_reminder", &reminder),
            "⏰ Recordatorio creado: «call mom», sáb 7 mar, 09:00, todos los días."
        );
        let summary = json!({"period": "this_month", "totals": [
            {"currency": "EUR", "category": "food", "total": 30, "count": 2},
            {"currency": "EUR", "category": "transport", "total": 12.5, "count": 1}]});
        assert_eq!(
            confirm(Lang::Es, "expense_summary", &summary),
            "💸 Gastos este mes: 42.50 EUR (comida 30.00, transporte 12.50)."
        );
        assert_eq!(
            confirm(Lang::En, "list_reminders", &json!({"reminders": []})),
            "You have no pending reminders."
        );
    }
}
