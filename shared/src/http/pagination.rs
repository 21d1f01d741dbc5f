//! `?limit=` and `?cursor=` in, `{"data", "has_more", "next_cursor"}` out.

use super::error::ApiError;
use super::request::{Ctx, Reply};
use crate::store::{Page, PageKey};
use schemars::JsonSchema;
use serde::Serialize;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// Every list's body.
#[derive(Serialize, JsonSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// A validated page request for one list.
pub struct PageRequest {
    /// Names the list (route, resource and filters); a cursor only works on its own list.
    pub list: String,
    pub limit: usize,
    pub start: Option<PageKey>,
}

impl Ctx<'_> {
    pub async fn page_request(&self, list: String) -> Result<PageRequest, ApiError> {
        let limit = match self.query("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let start = match self.query("cursor") {
            None => None,
            Some(cursor) => Some(self.app.secrets().await?.cursor.decode(&list, cursor)?),
        };
        Ok(PageRequest { list, limit, start })
    }

    /// The list reply for `page`, with a cursor for the next page when there is one.
    pub async fn list_reply<T: Serialize>(
        &self,
        request: &PageRequest,
        page: Page<T>,
    ) -> Result<Reply, ApiError> {
        let next_cursor = match &page.next {
            Some(position) => Some(
                self.app
                    .secrets()
                    .await?
                    .cursor
                    .encode(&request.list, position),
            ),
            None => None,
        };
        Reply::ok(&List {
            has_more: next_cursor.is_some(),
            data: page.items,
            next_cursor,
        })
    }
}
