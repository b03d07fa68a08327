//! Cursor pagination of lists, newest first: `?limit=` (default 50, at most 200) and
//! `?cursor=` (opaque: the `next_cursor` of the previous page).
//!
//! Keyset, not offset: a page is the rows strictly after the cursor's `(time, id)` in the order
//! `time desc, id desc`, so rows arriving meanwhile never shift or repeat a page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::Params;
use crate::error::ApiError;
use crate::supabase::Query;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// A position in a list: the sort time and id of the last row seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    /// The cursor after `row`, read from its `column` and `id`.
    fn after(row: &Value, column: &str) -> Option<Self> {
        let at = DateTime::parse_from_rfc3339(row[column].as_str()?).ok()?;
        let id = Uuid::try_parse(row["id"].as_str()?).ok()?;
        Some(Self {
            at: at.with_timezone(&Utc),
            id,
        })
    }

    pub fn encode(&self) -> String {
        let at = self.at.to_rfc3339_opts(SecondsFormat::Micros, true);
        URL_SAFE_NO_PAD.encode(format!("{at}|{}", self.id))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at, id) = text.split_once('|')?;
        Some(Self {
            at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Which page to read.
#[derive(Clone, Debug)]
pub struct Page {
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub data: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl Page {
    /// `limit` and `cursor` from the query string; out of range or unreadable is 400.
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}"))
                })?,
        };
        let after = params
            .get("cursor")
            .map(|text| {
                Cursor::decode(text).ok_or_else(|| ApiError::BadRequest("invalid cursor".into()))
            })
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// Orders `query` by `column desc, id desc`, starts after the cursor, and reads one row
    /// more than the page holds (to know whether there is a next page). The `column <= at`
    /// bound beside the `or` lets the index `(org_id, column desc, id desc)` start the scan at
    /// the cursor, so a deep page costs what the first one does.
    pub fn apply(&self, query: Query, column: &str) -> Query {
        let query = match &self.after {
            Some(cursor) => {
                let at = cursor.at.to_rfc3339_opts(SecondsFormat::Micros, true);
                let id = cursor.id;
                query.filter(column, "lte", format!("\"{at}\"")).param(
                    "or",
                    &format!("({column}.lt.\"{at}\",and({column}.eq.\"{at}\",id.lt.{id}))"),
                )
            }
            None => query,
        };
        query
            .param("order", &format!("{column}.desc,id.desc"))
            .limit(self.limit + 1)
    }

    /// The page from the rows read by [`Page::apply`].
    pub fn listing(&self, mut rows: Vec<Value>, column: &str) -> Listing {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let next_cursor = more
            .then(|| rows.last().and_then(|row| Cursor::after(row, column)))
            .flatten()
            .map(|cursor| cursor.encode());
        Listing {
            data: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let row = json!({"created_at": "2026-11-23T15:53:00.123456+00:00",
                         "id": "11111111-1111-1111-1111-111111111111"});
        let cursor = Cursor::after(&row, "created_at").expect("cursor");
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert!(Cursor::decode("not base64!").is_none());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("2026-11-23|x")).is_none());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x\"),id.gt.0|1")).is_none());
    }

    #[test]
    fn limits_are_bounded() {
        let page = |q: &str| Page::from_params(&Params::from_query(Some(q)));
        assert_eq!(page("").map(|p| p.limit).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(page("limit=200").map(|p| p.limit).ok(), Some(200));
        assert!(page("limit=201").is_err());
        assert!(page("limit=0").is_err());
        assert!(page("limit=-1").is_err());
        assert!(page("cursor=%%%").is_err());
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        let page = Page {
            limit: 2,
            after: None,
        };
        let row = |id: &str| json!({"created_at": "2026-11-23T15:53:00+00:00", "id": id});
        let ids = [
            "11111111-1111-1111-1111-111111111113",
            "11111111-1111-1111-1111-111111111112",
            "11111111-1111-1111-1111-111111111111",
        ];
        let full = page.listing(ids.iter().map(|id| row(id)).collect(), "created_at");
        assert_eq!(full.data.len(), 2);
        let next = Cursor::decode(full.next_cursor.as_deref().expect("next")).expect("cursor");
        assert_eq!(next.id.to_string(), ids[1]);
        let last = page.listing(vec![row(ids[2])], "created_at");
        assert!(last.next_cursor.is_none());
    }
}
