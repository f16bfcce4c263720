//! Paging and filters of the Admin API's lists: a page size within bounds, an opaque token that
//! names the last item returned (so a walk survives items added and removed around it), tied
//! to the list and filters it came from, and label selectors.

use crate::error::ControlPlaneError;
use base64::Engine;
use std::collections::BTreeMap;

pub(crate) const MAX_PAGE_SIZE: u32 = 1000;
const TOKEN_VERSION: &str = "p1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn invalid(field: &str, reason: &'static str, message: impl Into<String>) -> ControlPlaneError {
    ControlPlaneError::InvalidArgument {
        field: field.to_string(),
        reason,
        message: message.into(),
    }
}

/// Where one page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) size: usize,
    /// Items sort by name; the page starts after this one.
    pub(crate) after: Option<String>,
    list: String,
}

impl Page {
    /// Reads `page_size` and `page_token` of a request to the list `list`, whose filters are
    /// `filters` (as the request gave them: a token is good only for the same ones).
    pub(crate) fn parse(list: &str, filters: &[&str], page_size: u32, token: &str) -> Result<Page, ControlPlaneError> {
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(invalid(
                "page_size",
                "BAD_PAGE_SIZE",
                format!("must be between 1 and {MAX_PAGE_SIZE} (got {page_size})"),
            ));
        }
        let list = format!("{list}\u{1f}{}", filters.join("\u{1f}"));
        let after = if token.is_empty() {
            None
        } else {
            let bad = || {
                invalid(
                    "page_token",
                    "BAD_PAGE_TOKEN",
                    "is not a token this list gave out with these filters: start again without one",
                )
            };
            let decoded = B64.decode(token).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let mut parts = text.splitn(3, '\u{1e}');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(TOKEN_VERSION), Some(for_list), Some(last)) if for_list == list => Some(last.to_string()),
                _ => return Err(bad()),
            }
        };
        Ok(Page {
            size: page_size as usize,
            after,
            list,
        })
    }

    /// Whether this is a walk's first page.
    pub(crate) fn is_first(&self) -> bool {
        self.after.is_none()
    }

    /// The items of this page from `items` (sorted by name), with their names, and the token
    /// for the next page.
    pub(crate) fn take<'a, T>(
        &self,
        items: &'a BTreeMap<String, T>,
        keep: impl Fn(&str, &T) -> bool,
    ) -> (Vec<(&'a str, &'a T)>, String) {
        let start = match &self.after {
            Some(last) => std::ops::Bound::Excluded(last.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let mut page = Vec::with_capacity(self.size.min(items.len()));
        let mut more = false;
        let mut last = None;
        for (name, item) in items.range((start, std::ops::Bound::Unbounded)) {
            if !keep(name, item) {
                continue;
            }
            if page.len() == self.size {
                more = true;
                break;
            }
            page.push((name.as_str(), item));
            last = Some(name);
        }
        let next = match (more, last) {
            (true, Some(last)) => B64.encode(format!("{TOKEN_VERSION}\u{1e}{}\u{1e}{last}", self.list)),
            _ => String::new(),
        };
        (page, next)
    }
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    Differs(String, String),
    Has(String),
    HasNot(String),
}

/// A label selector: comma-separated terms, each `key=value`, `key!=value`, `key` or `!key`;
/// every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Term>);

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, ControlPlaneError> {
        let mut terms = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let key_ok = |key: &str| {
                !key.is_empty()
                    && key.len() <= 63
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
            };
            let bad = || {
                invalid(
                    "label_selector",
                    "BAD_LABEL_SELECTOR",
                    format!(
                        "term {raw:?} is not `key=value`, `key!=value`, `key` or `!key` (keys: letters, digits, '.', '_', '-', '/')"
                    ),
                )
            };
            let term = if let Some((key, value)) = raw.split_once("!=") {
                Term::Differs(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = raw.split_once('=') {
                Term::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some(key) = raw.strip_prefix('!') {
                Term::HasNot(key.trim().to_string())
            } else {
                Term::Has(raw.to_string())
            };
            let key = match &term {
                Term::Equals(k, _) | Term::Differs(k, _) | Term::Has(k) | Term::HasNot(k) => k,
            };
            if !key_ok(key) {
                return Err(bad());
            }
            terms.push(term);
        }
        Ok(LabelSelector(terms))
    }

    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|term| match term {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::Differs(k, v) => labels.get(k) != Some(v),
            Term::Has(k) => labels.contains_key(k),
            Term::HasNot(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests;
