//! List pagination as Magnum does it (`marker`, `limit`, `sort_key`, `sort_dir`, `next`),
//! over rows gathered from one or many shards. A list handler parses the query, enforces its
//! policy, turns the query into a [`Listing`], finds its marker row and asks for the [`Page`];
//! the resource itself only says what a row is ([`Row`]).
//!
//! Order is `(sort_key, id)` in the requested direction, `id` being creation order (here:
//! `created_at`, then uuid), like oslo.db's `paginate_query`. The marker is a position, not a
//! member of the page: rows strictly after the marker's key are returned.
use crate::error::ApiError;
use crate::pylit::str_repr;
use serde_json::Value;
use std::cmp::Ordering;

/// The query parameters of a list request, converted like WSME converts them.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub marker: Option<String>,
    pub limit: Option<i64>,
    pub sort_key: String,
    pub sort_dir: String,
}

impl ListQuery {
    /// Unknown parameters are ignored (clients add their own).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            sort_key: "id".into(),
            sort_dir: "asc".into(),
            ..Default::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "marker" => {
                    let u = uuid::Uuid::parse_str(v).map_err(|_| {
                        ApiError::BadRequest(format!(
                            "Invalid input for field/attribute marker. Value: '{v}'. unable to \
                             convert to uuid. Error: Expected a uuid but received {v}."
                        ))
                    })?;
                    q.marker = Some(u.to_string());
                }
                "limit" => {
                    let n = v.trim().parse::<i64>().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "Invalid input for field/attribute limit. Value: '{v}'. unable to \
                             convert to int. Error: invalid literal for int() with base 10: {}",
                            str_repr(v)
                        ))
                    })?;
                    q.limit = Some(n);
                }
                "sort_key" => q.sort_key = v.clone(),
                "sort_dir" => q.sort_dir = v.clone(),
                _ => {}
            }
        }
        Ok(q)
    }

    /// `validate_limit` then `validate_sort_dir`: effective limit and whether descending.
    fn validate(&self, max_limit: usize) -> Result<(usize, bool), ApiError> {
        let limit = match self.limit {
            Some(n) if n <= 0 => return Err(ApiError::bad_request("Limit must be positive")),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max_limit),
            None => max_limit,
        };
        let desc = match self.sort_dir.as_str() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
                )))
            }
        };
        Ok((limit, desc))
    }

    fn check_sort_key(&self, columns: &[&str]) -> Result<(), ApiError> {
        if columns.contains(&self.sort_key.as_str()) {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "The sort_key value \"{}\" is an invalid field for sorting",
                self.sort_key
            )))
        }
    }
}

/// What a listed resource says about its rows.
pub trait Row {
    /// Valid `sort_key`s: the columns of the resource's table.
    const COLUMNS: &'static [&'static str];
    /// The uuid a `marker` names (a quota's integer id: quotas have no uuid).
    fn uuid(&self) -> String;
    /// Magnum's `id` column, the tie-break after the sort value: creation order.
    fn created(&self) -> i64;
    /// The row as a document whose fields are the sort keys. Not built for `sort_key=id`.
    fn doc(&self) -> Value;
}

// Handlers that filter borrowed rows page over references.
impl<T: Row> Row for &T {
    const COLUMNS: &'static [&'static str] = T::COLUMNS;
    fn uuid(&self) -> String {
        (**self).uuid()
    }
    fn created(&self) -> i64 {
        (**self).created()
    }
    fn doc(&self) -> Value {
        (**self).doc()
    }
}

/// A list query past `validate_limit`/`validate_sort_dir`, ready to place and cut rows.
#[derive(Clone, Debug)]
pub struct Listing {
    q: ListQuery,
    limit: usize,
    desc: bool,
}

/// One page of a collection and Magnum's `next` link, present when the page is full.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub next: Option<String>,
}

impl Listing {
    /// Call after the policy checks: their 403s come before a bad limit's or direction's 400.
    pub fn new(q: ListQuery, max_limit: usize) -> Result<Self, ApiError> {
        let (limit, desc) = q.validate(max_limit)?;
        Ok(Listing { q, limit, desc })
    }

    /// `Some((desc, limit))` when the order is Magnum's default (`sort_key=id`: creation
    /// order), the one a shard can cut a page in itself (`ShardQuery::ClustersPage`).
    pub fn id_order(&self) -> Option<(bool, usize)> {
        (self.q.sort_key == "id").then_some((self.desc, self.limit))
    }

    /// The `marker` asked for, if any.
    pub fn marker(&self) -> Option<&str> {
        self.q.marker.as_deref()
    }

    /// Where `row` stands in list order.
    pub fn key<T: Row>(&self, row: &T) -> Key {
        let sort = if self.q.sort_key == "id" {
            Value::Null
        } else {
            row.doc()
                .get(&self.q.sort_key)
                .cloned()
                .unwrap_or(Value::Null)
        };
        Key {
            sort,
            created: row.created(),
            uuid: row.uuid(),
        }
    }

    /// Where the marker row stands, looked up by uuid among `rows`; `missing` is the
    /// resource's 404 for a marker that names none of them.
    pub fn find_marker<'a, T: Row + 'a>(
        &self,
        rows: impl IntoIterator<Item = &'a T>,
        missing: impl FnOnce(&str) -> ApiError,
    ) -> Result<Option<Key>, ApiError> {
        let Some(m) = self.marker() else {
            return Ok(None);
        };
        match rows.into_iter().find(|r| r.uuid() == m) {
            Some(r) => Ok(Some(self.key(r))),
            None => Err(missing(m)),
        }
    }

    /// Checks the sort key (after the marker: its 404 wins over this 400), then sorts, skips
    /// past `marker`, cuts at the limit and links the next page from `<base>/v1/<resource>`.
    pub fn page<T: Row>(
        &self,
        rows: Vec<T>,
        marker: Option<Key>,
        base: &str,
        resource: &str,
    ) -> Result<Page<T>, ApiError> {
        self.q.check_sort_key(T::COLUMNS)?;
        let keyed = rows.into_iter().map(|r| (self.key(&r), r)).collect();
        let (rows, full) = page(keyed, marker.as_ref(), self.limit, self.desc);
        let next = full
            .then(|| rows.last())
            .flatten()
            .map(|(k, _)| next_link(base, resource, &self.q, self.limit, &k.uuid));
        Ok(Page {
            rows: rows.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

/// Position of a row in list order.
#[derive(Clone, Debug)]
pub struct Key {
    sort: Value,
    created: i64,
    uuid: String,
}

/// SQL-like ordering of column values: NULL first, then booleans, numbers, strings, and
/// anything else by its JSON text (e.g. the `labels` column, stored as JSON text).
fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    }
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        cmp_values(&self.sort, &other.sort)
            .then(self.created.cmp(&other.created))
            .then_with(|| self.uuid.cmp(&other.uuid))
    }
}

/// Sorts `rows`, skips up to and including `marker`, and cuts at `limit`. Returns the page
/// and whether it is full (Magnum's condition for a `next` link).
fn page<T>(
    mut rows: Vec<(Key, T)>,
    marker: Option<&Key>,
    limit: usize,
    desc: bool,
) -> (Vec<(Key, T)>, bool) {
    let ord = |a: &Key, b: &Key| {
        let o = a.cmp(b);
        if desc {
            o.reverse()
        } else {
            o
        }
    };
    rows.sort_by(|a, b| ord(&a.0, &b.0));
    let out: Vec<(Key, T)> = rows
        .into_iter()
        .filter(|(k, _)| marker.is_none_or(|m| ord(k, m) == Ordering::Greater))
        .take(limit)
        .collect();
    let full = !out.is_empty() && out.len() == limit;
    (out, full)
}

/// `<base>/v1/<resource>?sort_key=…&sort_dir=…&limit=N&marker=<uuid>`.
fn next_link(base: &str, resource: &str, q: &ListQuery, limit: usize, last: &str) -> String {
    format!(
        "{base}/v1/{resource}?sort_key={}&sort_dir={}&limit={limit}&marker={last}",
        q.sort_key, q.sort_dir
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(sort: Value, created: i64, uuid: &str) -> Key {
        Key {
            sort,
            created,
            uuid: uuid.into(),
        }
    }

    #[test]
    fn paginates_in_key_then_id_order() {
        let rows = vec![
            (key(json!("b"), 1, "u1"), 1),
            (key(json!("a"), 2, "u2"), 2),
            (key(Value::Null, 3, "u3"), 3),
            (key(json!("a"), 0, "u0"), 0),
        ];
        let (p, full) = page(rows.clone(), None, 2, false);
        assert_eq!(p.iter().map(|r| r.1).collect::<Vec<_>>(), vec![3, 0]);
        assert!(full);
        let m = p[1].0.clone();
        let (p, full) = page(rows.clone(), Some(&m), 10, false);
        assert_eq!(p.iter().map(|r| r.1).collect::<Vec<_>>(), vec![2, 1]);
        assert!(!full);
        let (p, _) = page(rows, None, 10, true);
        assert_eq!(p.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 2, 0, 3]);
    }

    #[test]
    fn query_validation() {
        let q = ListQuery::parse(&[("limit".into(), "0".into())]).unwrap();
        assert_eq!(
            q.validate(1000).unwrap_err().to_string(),
            "Limit must be positive"
        );
        let q = ListQuery::parse(&[("sort_dir".into(), "up".into())]).unwrap();
        assert!(q.validate(1000).is_err());
        assert!(ListQuery::parse(&[("limit".into(), "x".into())]).is_err());
        assert!(ListQuery::parse(&[("marker".into(), "x".into())]).is_err());
        let q = ListQuery::parse(&[("limit".into(), "5000".into())]).unwrap();
        assert_eq!(q.validate(1000).unwrap(), (1000, false));
    }
}
