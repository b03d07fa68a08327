//! One PostgREST request: filters, `Prefer`, body, and typed decoding.

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_RANGE, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{DbError, PostgrestError};

/// `Prefer: return=...`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
}

/// `Prefer: count=...`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Exact,
    Planned,
    Estimated,
}

/// `Prefer: resolution=...` for upserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

/// The `Prefer` header, built from its parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefer {
    pub returning: Option<Return>,
    pub count: Option<Count>,
    pub resolution: Option<Resolution>,
}

impl Prefer {
    /// The header value, or `None` when nothing is preferred.
    pub fn header(&self) -> Option<String> {
        let parts: Vec<&str> = [
            self.returning.map(|r| match r {
                Return::Minimal => "return=minimal",
                Return::Representation => "return=representation",
            }),
            self.count.map(|c| match c {
                Count::Exact => "count=exact",
                Count::Planned => "count=planned",
                Count::Estimated => "count=estimated",
            }),
            self.resolution.map(|r| match r {
                Resolution::MergeDuplicates => "resolution=merge-duplicates",
                Resolution::IgnoreDuplicates => "resolution=ignore-duplicates",
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// A decoded answer: the rows (or function result) and the total from `Content-Range`.
#[derive(Debug)]
pub struct Answer<T> {
    pub data: T,
    /// The total row count, when a count was requested and known.
    pub count: Option<u64>,
}

/// The total of a `Content-Range` header (`0-24/3573`, `*/0`); `None` when unknown (`/*`).
pub fn parse_content_range(value: &str) -> Option<u64> {
    value.rsplit_once('/')?.1.parse().ok()
}

/// A request being built. Filters use PostgREST's syntax: `.filter("age", "gte", "18")`.
pub struct Query {
    target: Target,
    method: reqwest::Method,
    params: Vec<(String, String)>,
    prefer: Prefer,
    body: Option<Result<Bytes, String>>,
}

/// Where a query goes and as whom.
pub(super) struct Target {
    pub http: Option<reqwest::Client>,
    pub url: String,
    pub apikey: Option<String>,
    /// `Authorization: Bearer …`; none for a secret key (it travels only as `apikey`).
    pub bearer: Option<String>,
    pub timeout: std::time::Duration,
}

impl Query {
    pub(super) fn new(target: Target, method: reqwest::Method) -> Self {
        Self {
            target,
            method,
            params: Vec::new(),
            prefer: Prefer::default(),
            body: None,
        }
    }

    /// `select=columns`
    pub fn select(self, columns: &str) -> Self {
        self.param("select", columns)
    }

    /// `column=eq.value`
    pub fn eq(self, column: &str, value: impl std::fmt::Display) -> Self {
        self.filter(column, "eq", value)
    }

    /// `column=operator.value` (eq, neq, gt, gte, lt, lte, like, ilike, is, in, ...).
    pub fn filter(self, column: &str, operator: &str, value: impl std::fmt::Display) -> Self {
        self.param(column, &format!("{operator}.{value}"))
    }

    /// `order=column.asc|desc`
    pub fn order(self, column: &str, ascending: bool) -> Self {
        self.param(
            "order",
            &format!("{column}.{}", if ascending { "asc" } else { "desc" }),
        )
    }

    /// `limit=n`
    pub fn limit(self, n: usize) -> Self {
        self.param("limit", &n.to_string())
    }

    /// Any other query parameter.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the `Prefer` header.
    pub fn prefer(mut self, prefer: Prefer) -> Self {
        self.prefer = prefer;
        self
    }

    /// What a write answers with (`Prefer: return=...`).
    pub fn returning(mut self, returning: Return) -> Self {
        self.prefer.returning = Some(returning);
        self
    }

    /// Asks for the total row count in `Content-Range`.
    pub fn count(mut self, count: Count) -> Self {
        self.prefer.count = Some(count);
        self
    }

    /// `POST` rows (or a function's arguments) as JSON.
    pub fn insert(self, rows: &impl Serialize) -> Self {
        self.with_body(reqwest::Method::POST, rows)
    }

    /// `POST` with `on_conflict` and a resolution.
    pub fn upsert(
        mut self,
        rows: &impl Serialize,
        on_conflict: &str,
        resolution: Resolution,
    ) -> Self {
        self.prefer.resolution = Some(resolution);
        self.param("on_conflict", on_conflict).insert(rows)
    }

    /// `PATCH` the filtered rows.
    pub fn update(self, values: &impl Serialize) -> Self {
        self.with_body(reqwest::Method::PATCH, values)
    }

    /// `DELETE` the filtered rows.
    pub fn delete(mut self) -> Self {
        self.method = reqwest::Method::DELETE;
        self
    }

    /// Arguments of an RPC call.
    pub fn args(self, args: &impl Serialize) -> Self {
        self.with_body(reqwest::Method::POST, args)
    }

    fn with_body(mut self, method: reqwest::Method, body: &impl Serialize) -> Self {
        self.method = method;
        self.body = Some(
            serde_json::to_vec(body)
                .map(Bytes::from)
                .map_err(|e| e.to_string()),
        );
        self
    }

    /// Sends the request and decodes the JSON answer into `T`.
    pub async fn fetch<T: DeserializeOwned>(self) -> Result<Answer<T>, DbError> {
        let (bytes, count) = self.send().await?;
        let data = serde_json::from_slice(&bytes).map_err(|e| DbError::Decode(e.to_string()))?;
        Ok(Answer { data, count })
    }

    /// Sends the request and ignores the answer's body.
    pub async fn execute(mut self) -> Result<Option<u64>, DbError> {
        if self.prefer.returning.is_none() && self.method != reqwest::Method::GET {
            self.prefer.returning = Some(Return::Minimal);
        }
        Ok(self.send().await?.1)
    }

    async fn send(self) -> Result<(Bytes, Option<u64>), DbError> {
        let target = self.target;
        let http = target
            .http
            .as_ref()
            .ok_or_else(|| DbError::Decode("no HTTP client for PostgREST".into()))?;
        let mut request = http
            .request(self.method, &target.url)
            .timeout(target.timeout)
            .query(&self.params)
            .header(ACCEPT, "application/json");
        if let Some(bearer) = &target.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(key) = &target.apikey {
            request = request.header("apikey", key);
        }
        if let Some(prefer) = self.prefer.header() {
            request = request.header("prefer", prefer);
        }
        if let Some(body) = self.body {
            let body = body.map_err(DbError::Decode)?;
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let count = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        if (300..400).contains(&status) {
            // Not followed (the client's policy): the keys stay with PostgREST.
            return Err(DbError::Api(PostgrestError {
                status,
                code: String::new(),
                message: format!("PostgREST answered a redirect ({status}), not followed"),
                details: None,
                hint: None,
            }));
        }
        let bytes = response.bytes().await?;
        if !(200..300).contains(&status) {
            return Err(DbError::from_response(status, &bytes));
        }
        Ok((bytes, count))
    }
}
