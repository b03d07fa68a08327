//! Outbound WhatsApp: the Graph API client, or the outbox transport when no access token is
//! configured (messages are recorded as `simulated`, so the whole flow runs locally).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::configuration::{Secret, WhatsAppSettings};
use crate::domain::{Address, MessageKind, PhoneNumberId, Wamid};

/// WhatsApp's limit for one text message.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The largest media download kept in memory (OpenAI's transcription limit).
pub const MAX_MEDIA_BYTES: usize = 25 * 1024 * 1024;

/// The longest media id put in a Graph URL (Meta's are 15 to 17 digits).
pub const MAX_MEDIA_ID_LEN: usize = 64;

/// Redirects a media download may follow, each to an allowed host.
const MAX_MEDIA_REDIRECTS: usize = 3;

/// Whether `id` may go into a Graph URL as a media id: ASCII letters and digits only, at most
/// [`MAX_MEDIA_ID_LEN`] of them (so never `/`, `?`, `#`, `%`, `..` or anything encoded). The
/// id comes from a message's payload, written by whoever sent the delivery.
pub fn is_media_id(id: &str) -> bool {
    (1..=MAX_MEDIA_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where a media URL returned by Graph may point: over https, a host of `WHATSAPP_MEDIA_HOSTS`
/// (`.suffix` entries match any host under the suffix); or the Graph base URL's own origin,
/// scheme and port included (how local fakes serve media).
#[derive(Clone, Debug)]
pub struct MediaHosts {
    graph: Option<url::Origin>,
    hosts: Vec<String>,
}

impl MediaHosts {
    pub fn new(graph_base_url: &str, hosts: &[String]) -> Self {
        Self {
            graph: url::Url::parse(graph_base_url).ok().map(|url| url.origin()),
            hosts: hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `url` may be fetched with the access token.
    pub fn allows(&self, url: &url::Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        if self
            .graph
            .as_ref()
            .is_some_and(|graph| url.origin() == *graph)
        {
            return true;
        }
        let Some(url::Host::Domain(host)) = url.host() else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        url.scheme() == "https"
            && self
                .hosts
                .iter()
                .any(|allowed| match allowed.strip_prefix('.') {
                    Some(suffix) => host
                        .strip_suffix(suffix)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                    None => host == *allowed,
                })
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Freeform text (only inside the 24 h window); split past 4096 characters.
    Text(String),
    /// An approved template with body parameters (allowed outside the window).
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
    },
    /// Reply buttons, a list or a reaction (only inside the 24 h window).
    Rich(super::Rich),
}

impl Outgoing {
    /// The `type` recorded for the outbound message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Template { .. } => MessageKind::Template,
            Self::Rich(rich) => rich.kind(),
        }
    }
}

/// What a send produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// One id per message sent (a long text is several messages).
    pub wamids: Vec<Wamid>,
    /// True when the outbox recorded it instead of sending.
    pub simulated: bool,
}

/// What to do about a failed send, by Graph error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphAction {
    /// 131047: outside the 24 h window; send the approved template instead.
    TemplateFallback,
    /// 130429, 131056, 4, 5xx, network: retry with backoff.
    Retry,
    /// 190: the access token expired; alert the operators.
    TokenExpired,
    /// Anything else: park the message in the dead letter queue.
    DeadLetter,
}

/// A failed Graph API call.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Graph API answered {status} with error {code}: {message}")]
    Api {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("Graph API unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected Graph API response: {0}")]
    Decode(String),
    /// Refused before any request: a media id or media URL that is not Graph's or Meta's.
    #[error("refused: {0}")]
    Refused(String),
    /// A long text whose first parts went out before a later part failed.
    #[error("sent {sent} part(s) of the message, then: {source}")]
    Partial {
        sent: usize,
        #[source]
        source: Box<GraphError>,
    },
}

impl GraphError {
    pub fn action(&self) -> GraphAction {
        match self {
            Self::Api { code: 131047, .. } => GraphAction::TemplateFallback,
            Self::Api {
                code: 130429 | 131056 | 4,
                ..
            } => GraphAction::Retry,
            Self::Api { code: 190, .. } => GraphAction::TokenExpired,
            Self::Api { status, .. } if *status >= 500 => GraphAction::Retry,
            Self::Api { .. } | Self::Decode(_) | Self::Partial { .. } | Self::Refused(_) => {
                GraphAction::DeadLetter
            }
            Self::Transport(_) => GraphAction::Retry,
        }
    }

    /// Whether Meta may have taken the message although the call failed: no answer after the
    /// request went out, a gateway that gave up on Meta (502, 504, or a 5xx without a Graph
    /// error), a success answer that could not be read, or some parts already sent. Never
    /// send it again.
    pub fn maybe_sent(&self) -> bool {
        match self {
            Self::Transport(error) => !error.is_connect(),
            Self::Decode(_) | Self::Partial { .. } => true,
            Self::Refused(_) => false,
            Self::Api { status, code, .. } => {
                matches!(status, 502 | 504) || (*status >= 500 && *code == 0)
            }
        }
    }
}

impl From<reqwest::Error> for GraphError {
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct SendResponse {
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

#[derive(Deserialize)]
struct MediaInfo {
    url: String,
    mime_type: Option<String>,
}

/// Downloaded media.
#[derive(Debug)]
pub struct Media {
    pub bytes: Bytes,
    pub mime_type: Option<String>,
}

/// The WhatsApp sender of this process.
#[derive(Clone)]
pub struct WhatsApp {
    http: reqwest::Client,
    /// `https://graph.facebook.com/<GRAPH_API_VERSION>`
    base_url: String,
    token: Option<Secret>,
    /// Per call: a send that outlasts it has an unknown outcome and is never retried.
    timeout: Duration,
    /// The first backoff of a throttled send (`GRAPH_RETRY_BASE_MS`).
    pub(super) retry_base: Duration,
    media_hosts: MediaHosts,
    /// Fetches media URLs, following redirects only to [`MediaHosts`] (the shared client
    /// follows any); built on first use. `None` when it could not be built.
    media_http: Arc<OnceLock<Option<reqwest::Client>>>,
}

impl WhatsApp {
    pub fn new(http: reqwest::Client, settings: &WhatsAppSettings, retry_base: Duration) -> Self {
        Self {
            http,
            base_url: format!("{}/{}", settings.graph_base_url, settings.graph_version),
            token: settings.access_token.clone(),
            timeout: settings.timeout,
            retry_base,
            media_hosts: MediaHosts::new(&settings.graph_base_url, &settings.media_hosts),
            media_http: Arc::default(),
        }
    }

    fn media_http(&self) -> Result<&reqwest::Client, GraphError> {
        let hosts = self.media_hosts.clone();
        self.media_http
            .get_or_init(|| {
                let policy = reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > MAX_MEDIA_REDIRECTS {
                        attempt.error("too many redirects")
                    } else if hosts.allows(attempt.url()) {
                        attempt.follow()
                    } else {
                        attempt.stop()
                    }
                });
                reqwest::Client::builder()
                    .redirect(policy)
                    .build()
                    .inspect_err(|e| tracing::error!(error = %e, "media HTTP client not built"))
                    .ok()
            })
            .as_ref()
            .ok_or_else(|| GraphError::Refused("no HTTP client for media".into()))
    }

    /// Whether messages are only recorded (no access token configured).
    pub fn is_simulated(&self) -> bool {
        self.token.is_none()
    }

    /// Sends `message` to `to` from the business number `from`, every part carrying
    /// `callback` as its `biz_opaque_callback_data` (Meta echoes it in the part's statuses).
    pub async fn send(
        &self,
        from: &PhoneNumberId,
        to: &Address,
        message: &Outgoing,
        callback: Uuid,
    ) -> Result<Sent, GraphError> {
        if self.is_simulated() {
            tracing::info!(
                kind = message.kind().as_str(),
                "outbound message simulated (no access token)"
            );
            return Ok(Sent {
                wamids: Vec::new(),
                simulated: true,
            });
        }
        let mut wamids = Vec::new();
        for body in request_bodies(to, message, callback) {
            match self.send_one(from, &body).await {
                Ok(wamid) => wamids.push(wamid),
                Err(error) if wamids.is_empty() => return Err(error),
                Err(error) => {
                    let sent = wamids.len();
                    return Err(GraphError::Partial {
                        sent,
                        source: Box::new(error),
                    });
                }
            }
        }
        Ok(Sent {
            wamids,
            simulated: false,
        })
    }

    /// One `POST /{phone-number-id}/messages`: the id of the message Meta accepted.
    async fn send_one(&self, from: &PhoneNumberId, body: &Value) -> Result<Wamid, GraphError> {
        let answer: SendResponse = self.post(&format!("{from}/messages"), body).await?;
        let id = answer
            .messages
            .first()
            .map(|m| m.id.as_str())
            .unwrap_or_default();
        Wamid::parse(id).ok_or_else(|| GraphError::Decode("no message id".into()))
    }

    /// Marks an inbound message as read and shows the typing indicator.
    pub async fn mark_read(&self, from: &PhoneNumberId, wamid: &Wamid) -> Result<(), GraphError> {
        if self.is_simulated() {
            return Ok(());
        }
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid.as_str(),
            "typing_indicator": {"type": "text"},
        });
        self.post::<Value>(&format!("{from}/messages"), &body)
            .await
            .map(drop)
    }

    /// Media id -> short-lived URL -> bytes, both with the bearer token. The id must be
    /// [`is_media_id`] and the URL [`MediaHosts::allows`], else nothing is requested.
    pub async fn download_media(&self, media_id: &str) -> Result<Media, GraphError> {
        let Some(token) = &self.token else {
            return Err(GraphError::Decode(
                "media download needs WHATSAPP_ACCESS_TOKEN".into(),
            ));
        };
        if !is_media_id(media_id) {
            return Err(GraphError::Refused("not a Graph media id".into()));
        }
        let info: MediaInfo = decode(
            self.http
                .get(format!("{}/{media_id}", self.base_url))
                .timeout(self.timeout)
                .bearer_auth(token.expose()),
        )
        .await?;
        let url = url::Url::parse(&info.url)
            .ok()
            .filter(|url| self.media_hosts.allows(url))
            .ok_or_else(|| GraphError::Refused("media URL on a host that is not Meta's".into()))?;
        let mut response = self
            .media_http()?
            .get(url)
            .timeout(self.timeout)
            .bearer_auth(token.expose())
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let too_large = || GraphError::Decode(format!("media larger than {MAX_MEDIA_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len > MAX_MEDIA_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > MAX_MEDIA_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Media {
            bytes: Bytes::from(bytes),
            mime_type: info.mime_type,
        })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, GraphError> {
        let token = self.token.as_ref().map(Secret::expose).unwrap_or_default();
        decode(
            self.http
                .post(format!("{}/{path}", self.base_url))
                .timeout(self.timeout)
                .bearer_auth(token)
                .json(body),
        )
        .await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, GraphError> {
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(e.to_string()))
}

async fn api_error(response: reqwest::Response) -> GraphError {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
        Ok(envelope) => GraphError::Api {
            status,
            code: envelope.error.code,
            message: envelope.error.message,
        },
        Err(_) => GraphError::Api {
            status,
            code: 0,
            message: format!("HTTP {status}"),
        },
    }
}

/// The JSON bodies of `POST /{phone-number-id}/messages` for `message` (several for a long
/// text), each with `callback` (our `messages.id`, 36 characters: Meta allows 512) as its
/// `biz_opaque_callback_data`.
pub fn request_bodies(to: &Address, message: &Outgoing, callback: Uuid) -> Vec<Value> {
    // A phone number goes in `to`; a BSUID in `recipient` (Meta: `to` wins when both are set);
    // a group's id in `to`, with `recipient_type: group` (Groups API).
    let (recipient_type, field, address) = match to {
        Address::Phone(number) => ("individual", "to", number.as_str()),
        Address::User(user) => ("individual", "recipient", user.as_str()),
        Address::Group(group) => ("group", "to", group.as_str()),
    };
    let envelope = |kind: &str, content: Value| {
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": recipient_type,
            field: address,
            "type": kind,
            kind: content,
            "biz_opaque_callback_data": callback,
        })
    };
    match message {
        Outgoing::Text(text) => split_text(text, MAX_TEXT_CHARS)
            .into_iter()
            .map(|part| envelope("text", json!({"preview_url": false, "body": part})))
            .collect(),
        Outgoing::Template {
            name,
            language,
            parameters,
        } => {
            let mut template = json!({"name": name, "language": {"code": language}});
            if !parameters.is_empty() {
                let params: Vec<Value> = parameters
                    .iter()
                    .map(|p| json!({"type": "text", "text": p}))
                    .collect();
                template["components"] = json!([{"type": "body", "parameters": params}]);
            }
            vec![envelope("template", template)]
        }
        Outgoing::Rich(rich) => {
            let (kind, content) = rich.graph();
            vec![envelope(kind, content)]
        }
    }
}

/// Splits `text` into parts of at most `max` characters, preferring line and word breaks.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let cut = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let window = &rest[..cut];
        let at = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > 0)
            .unwrap_or(cut);
        parts.push(rest[..at].trim_end().to_string());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupId;

    #[test]
    fn a_group_is_sent_to_with_recipient_type_group_and_its_id_in_to() {
        // Meta's Groups API example: a group's id as `to`, `recipient_type: group`.
        let group = GroupId::parse("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD");
        let to = Address::Group(group.expect("a documented group id"));
        let bodies = request_bodies(&to, &Outgoing::Text("hi".into()), Uuid::nil());
        assert_eq!(bodies[0]["recipient_type"], "group");
        assert_eq!(
            bodies[0]["to"],
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
        );
        assert!(bodies[0].get("recipient").is_none());
    }

    #[test]
    fn long_texts_split_at_breaks_within_the_limit() {
        let text = format!("{} {}", "a".repeat(4000), "b".repeat(200));
        let parts = split_text(&text, MAX_TEXT_CHARS);
        assert_eq!(parts, vec!["a".repeat(4000), "b".repeat(200)]);
        let unbroken = "é".repeat(9000);
        let parts = split_text(&unbroken, MAX_TEXT_CHARS);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [4096, 4096, 808]
        );
        assert_eq!(split_text("hi", MAX_TEXT_CHARS), vec!["hi"]);
    }

    #[test]
    fn only_plain_media_ids_go_into_a_graph_url() {
        assert!(is_media_id("1003383421387256"));
        assert!(is_media_id("abcXYZ09"));
        for id in [
            "",
            "../me",
            "1/messages",
            "1?fields=x",
            "1#x",
            "1%2F",
            "..",
            "1.2",
            "1 2",
            "١٢",
            "１２",
            "1\0",
        ] {
            assert!(!is_media_id(id), "{id:?}");
        }
        assert!(!is_media_id(&"1".repeat(MAX_MEDIA_ID_LEN + 1)));
    }

    #[test]
    fn media_urls_are_fetched_only_from_meta_or_the_graph_base() {
        let hosts: Vec<String> = crate::configuration::DEFAULT_MEDIA_HOSTS
            .split(',')
            .map(String::from)
            .collect();
        let allowed = MediaHosts::new("http://127.0.0.1:4010", &hosts);
        let allows = |url: &str| allowed.allows(&url::Url::parse(url).expect("url"));
        assert!(allows(
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"
        ));
        assert!(allows("https://LOOKASIDE.fbsbx.com./x"));
        assert!(allows("https://scontent.xx.fbcdn.net/v/t1"));
        assert!(allows("https://mmg.whatsapp.net/d/f/x.enc"));
        assert!(
            allows("http://127.0.0.1:4010/lookaside/1"),
            "the Graph base's origin"
        );
        for url in [
            "http://lookaside.fbsbx.com/x",
            "https://evil.example/x",
            "https://lookaside.fbsbx.com.evil.example/x",
            "https://evilfbcdn.net/x",
            "https://fbcdn.net.evil/x",
            "https://lookaside.fbsbx.com@evil.example/x",
            "https://user:pw@lookaside.fbsbx.com/x",
            "http://127.0.0.1:4011/x",
            "https://127.0.0.1:4010/x",
            "https://[::1]/x",
            "file:///etc/passwd",
        ] {
            assert!(!allows(url), "{url}");
        }
        let production = MediaHosts::new("https://graph.facebook.com", &hosts);
        let url = url::Url::parse("https://graph.facebook.com/x").expect("url");
        assert!(production.allows(&url));
    }

    #[test]
    fn graph_error_codes_choose_the_action() {
        let api = |status, code| GraphError::Api {
            status,
            code,
            message: String::new(),
        };
        assert_eq!(api(400, 131047).action(), GraphAction::TemplateFallback);
        assert_eq!(api(429, 130429).action(), GraphAction::Retry);
        assert_eq!(api(400, 131056).action(), GraphAction::Retry);
        assert_eq!(api(400, 4).action(), GraphAction::Retry);
        assert_eq!(api(401, 190).action(), GraphAction::TokenExpired);
        assert_eq!(api(400, 131026).action(), GraphAction::DeadLetter);
        assert_eq!(api(503, 0).action(), GraphAction::Retry);
    }

    #[tokio::test]
    async fn only_failures_after_the_request_left_may_have_sent() {
        let refused = reqwest::Client::new()
            .post("http://127.0.0.1:9/v23.0/1/messages")
            .send()
            .await
            .expect_err("nothing listens on port 9");
        assert!(!GraphError::from(refused).maybe_sent(), "never connected");
        assert!(GraphError::Decode("no message id".into()).maybe_sent());
        let answered = GraphError::Api {
            status: 429,
            code: 130429,
            message: String::new(),
        };
        assert!(!answered.maybe_sent(), "Meta answered with an error");
    }
}
