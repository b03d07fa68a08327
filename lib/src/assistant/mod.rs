//! The assistant that answers a contact. Until the LLM providers and tools exist, a simple
//! built-in responder stands behind this interface.

pub mod parser;
pub mod time;

/// What the assistant is asked to answer.
pub struct Question<'a> {
    /// The message type (`text`, `image`, …).
    pub kind: &'a str,
    /// The readable content, when there is one.
    pub text: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    /// The org's language (`en`, `es`, …).
    pub language: &'a str,
}

/// Answers questions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Assistant;

impl Assistant {
    /// The reply to `question`.
    pub fn reply(&self, question: &Question<'_>) -> String {
        let spanish = question.language.starts_with("es");
        let name = question
            .contact_name
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        match (question.kind, question.text) {
            ("text" | "interactive" | "button", Some(text)) if spanish => {
                format!("Hola{name}, recibí tu mensaje: «{text}». El asistente con IA aún no está conectado.")
            }
            ("text" | "interactive" | "button", Some(text)) => {
                format!("Hi{name}, I got your message: “{text}”. The AI assistant is not connected yet.")
            }
            _ if spanish => "Por ahora solo puedo leer mensajes de texto.".to_string(),
            _ => "For now I can only read text messages.".to_string(),
        }
    }
}
