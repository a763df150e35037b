//! Small helpers: locking, timestamps, deterministic ids, query strings, globs.

use std::sync::{Mutex, MutexGuard};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// Lock a mutex, ignoring poisoning (a panicked holder cannot leave our plain data invalid).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A UTC timestamp, stored as microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Ts(pub i64);

impl Ts {
    pub(crate) fn now() -> Ts {
        let now = OffsetDateTime::now_utc();
        Ts((now.unix_timestamp_nanos() / 1000) as i64)
    }

    pub(crate) fn plus_secs(self, secs: f64) -> Ts {
        Ts(self.0.saturating_add((secs * 1e6) as i64))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `2026-01-02T03:04:05` (no fraction, no zone).
    fn iso_seconds(self) -> String {
        let t = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// Keystone style: `2026-01-02T03:04:05.123456Z`.
    pub(crate) fn iso_micro(self) -> String {
        format!(
            "{}.{:06}Z",
            self.iso_seconds(),
            self.datetime().microsecond()
        )
    }

    /// Heat style: `2026-01-02T03:04:05Z`.
    pub(crate) fn iso(self) -> String {
        format!("{}Z", self.iso_seconds())
    }
}

fn digest(kind: &str, name: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(name.as_bytes());
    h.finalize().into()
}

/// A stable 32-hex id (Keystone style) derived from a kind and a name.
pub(crate) fn det_hex(kind: &str, name: &str) -> String {
    digest(kind, name)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A stable UUID derived from a kind and a name.
pub(crate) fn det_uuid(kind: &str, name: &str) -> Uuid {
    let d = digest(kind, name);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// `len` random characters of `alphabet` (ASCII).
fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// Heat's `short_id.generate_id()`: 12 lower-case base32 characters.
pub(crate) fn short_id() -> String {
    random_from(b"abcdefghijklmnopqrstuvwxyz234567", 12)
}

/// A random URL-safe string of `len` characters.
pub(crate) fn random_urlsafe(len: usize) -> String {
    random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        len,
    )
}

/// A random alphanumeric string (Heat's RandomString default classes: letters and digits).
pub(crate) fn random_alnum(len: usize) -> String {
    random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        len,
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode (and `+` → space) one query component.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a raw query string into ordered (key, value) pairs; `?flag` gives `("flag", "")`.
pub(crate) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Look up the first value of `key`.
pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// All values of `key`.
pub(crate) fn query_all<'a>(q: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Python-ish truthiness of a query flag: present with empty value, or true/1/yes/on.
pub(crate) fn query_flag(q: &[(String, String)], key: &str) -> Option<bool> {
    query_get(q, key).map(|v| {
        v.is_empty()
            || matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "t" | "y"
            )
    })
}

/// Shell-style glob: `*` matches any run of characters (including `/`), `?` one character.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// `a.b.c.d/p` → (network address, prefix), host bits cleared; IPv4 only.
pub(crate) fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, prefix) = cidr.split_once('/')?;
    let prefix: u32 = prefix.trim().parse().ok().filter(|p| *p <= 32)?;
    let octets: Vec<u32> = ip
        .trim()
        .split('.')
        .map(|o| o.parse::<u32>().ok().filter(|x| *x < 256))
        .collect::<Option<_>>()?;
    if octets.len() != 4 {
        return None;
    }
    let addr = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3];
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some((addr & mask, prefix))
}

pub(crate) fn fmt_ip(a: u32) -> String {
    format!(
        "{}.{}.{}.{}",
        a >> 24,
        (a >> 16) & 255,
        (a >> 8) & 255,
        a & 255
    )
}

/// Host `index` (0-based) of a CIDR, skipping network, gateway (.1) and DHCP (.2) addresses.
pub(crate) fn host_in(cidr: &str, index: u32, first: u32) -> String {
    let (base, prefix) = parse_cidr(cidr).unwrap_or((0x0a00_0000, 24));
    let size: u64 = 1u64 << (32 - prefix.min(30));
    let usable = (size.saturating_sub(u64::from(first) + 1)).max(1);
    let host = u64::from(first) + u64::from(index) % usable;
    fmt_ip(base.wrapping_add(host as u32))
}

/// The last address before the broadcast address of a CIDR (the end of a Neutron allocation
/// pool).
pub(crate) fn last_host(cidr: &str) -> String {
    let (base, prefix) = parse_cidr(cidr).unwrap_or((0x0a00_0000, 24));
    let size: u64 = 1u64 << (32 - prefix.min(30));
    fmt_ip(base.wrapping_add((size - 2) as u32))
}

/// Floating IPs are handed out from the 11th address on (as in the default 172.24.4.0/24), so
/// a range needs at least a /28.
pub(crate) const FLOATING_MIN_PREFIX: u32 = 8;
pub(crate) const FLOATING_MAX_PREFIX: u32 = 28;

/// A floating IP range as given (`127.24.4.0/24`), normalised to its network address, or why not.
pub(crate) fn floating_range(cidr: &str) -> Result<String, String> {
    let (base, prefix) = parse_cidr(cidr)
        .ok_or_else(|| format!("{cidr:?} is not an IPv4 CIDR such as 172.24.4.0/24"))?;
    if !(FLOATING_MIN_PREFIX..=FLOATING_MAX_PREFIX).contains(&prefix) {
        return Err(format!(
            "{cidr}: the prefix must be /{FLOATING_MIN_PREFIX} to /{FLOATING_MAX_PREFIX}"
        ));
    }
    Ok(format!("{}/{prefix}", fmt_ip(base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_hosts() {
        assert_eq!(host_in("10.0.0.0/24", 0, 3), "10.0.0.3");
        assert_eq!(host_in("10.0.0.0/24", 1, 3), "10.0.0.4");
        assert_eq!(host_in("192.168.1.0/30", 5, 3), "192.168.1.3");
        assert_eq!(host_in("bogus", 0, 3), "10.0.0.3");
        assert_eq!(host_in("172.24.4.0/24", 0, 10), "172.24.4.10");
        assert_eq!(last_host("172.24.4.0/24"), "172.24.4.254");
        assert_eq!(last_host("127.24.0.0/16"), "127.24.255.254");
    }

    #[test]
    fn floating_ranges() {
        assert_eq!(
            floating_range("127.24.4.7/24").as_deref(),
            Ok("127.24.4.0/24")
        );
        assert_eq!(floating_range("10.1.0.0/28").as_deref(), Ok("10.1.0.0/28"));
        assert!(floating_range("10.1.0.0/29").is_err());
        assert!(floating_range("10.0.0.0/7").is_err());
        assert!(floating_range("fd00::/64").is_err());
        assert!(floating_range("172.24.4.0").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*/stacks", "/heat-api/v1/abc/stacks"));
        assert!(!glob_match("*/stacks", "/heat-api/v1/abc/stacks/x"));
        assert!(glob_match("*/stacks*", "/heat-api/v1/abc/stacks/x/y"));
        assert!(glob_match(
            "/identity/v3/auth/tokens",
            "/identity/v3/auth/tokens"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
    }

    #[test]
    fn query() {
        let q = parse_query(Some("nocatalog&name=a%20b&x=1+2&name=c"));
        assert_eq!(query_flag(&q, "nocatalog"), Some(true));
        assert_eq!(query_get(&q, "name"), Some("a b"));
        assert_eq!(query_all(&q, "name"), vec!["a b", "c"]);
        assert_eq!(query_get(&q, "x"), Some("1 2"));
        assert_eq!(percent_decode("50%"), "50%");
    }

    #[test]
    fn timestamps() {
        let t = Ts(1_700_000_000_123_456);
        assert_eq!(t.iso_micro(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(t.iso(), "2023-11-14T22:13:20Z");
        assert_eq!(det_hex("project", "admin").len(), 32);
        assert_eq!(det_uuid("image", "x"), det_uuid("image", "x"));
    }
}
