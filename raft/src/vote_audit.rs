//! Opt-in vote audit ([`crate::RaftConfig::vote_audit`]): an append-only text file in the data
//! dir, [`AUDIT_FILE`], with one fsynced line per vote change of any group, and its checker.
//!
//! Lines: `boot g=G <vote>` when a group opens (the vote read back from the store), `intent g=G
//! <vote>` before a vote is persisted, `saved g=G <vote>` after the store flushed it, where
//! `<vote>` is `term=T voted_for=N committed=0|1` or `none`. Writing the intent before the store
//! means a vote the store loses is still on record.
//!
//! The invariant checked ([`check`]), per node and group, across restarts: the vote never goes
//! back. openraft orders votes by `(term, voted_for, committed)` (its default "advanced" leader
//! ids allow a later, higher candidate in the same term), so moving to a higher candidate in one
//! term is legal and counted; granting a lower candidate in a term after a higher one, or coming
//! back from a restart with less than a vote that was saved, is a double vote and fails.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::types::{GroupId, Vote};

/// File name of the audit inside the node's data dir.
pub const AUDIT_FILE: &str = "vote-audit.log";

/// A vote as the audit records it; ordered as openraft orders votes of its default leader ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditVote {
    pub term: u64,
    pub voted_for: u64,
    pub committed: bool,
}

impl fmt::Display for AuditVote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = u8::from(self.committed);
        write!(
            f,
            "term={} voted_for={} committed={c}",
            self.term, self.voted_for
        )
    }
}

impl AuditVote {
    fn of(v: &Vote) -> Self {
        Self {
            term: v.leader_id.term,
            voted_for: v.leader_id.node_id,
            committed: v.committed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Boot,
    Intent,
    Saved,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Boot => "boot",
            Event::Intent => "intent",
            Event::Saved => "saved",
        }
    }
}

/// The writer: one per node, shared by its groups.
pub(crate) struct VoteAudit {
    file: Arc<Mutex<std::fs::File>>,
}

impl VoteAudit {
    pub(crate) fn open(data_dir: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join(AUDIT_FILE))?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends one line and fsyncs it before returning.
    pub(crate) async fn record(
        &self,
        event: Event,
        gid: GroupId,
        vote: Option<&Vote>,
    ) -> io::Result<()> {
        let vote = vote.map_or("none".to_string(), |v| AuditVote::of(v).to_string());
        let line = format!("{} g={gid} {vote}\n", event.as_str());
        let file = self.file.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            // One write call per line: a SIGKILL never leaves half a line.
            f.write_all(line.as_bytes())?;
            f.sync_data()
        });
        task.await
            .map_err(|e| io::Error::other(format!("vote audit task: {e}")))?
    }
}

/// What a clean audit showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Votes persisted (`saved` lines).
    pub saved: usize,
    /// Group openings (`boot` lines), i.e. restarts × groups.
    pub boots: usize,
    /// Votes announced but not confirmed saved before a crash, and not found on restart: never
    /// persisted, so never acted upon.
    pub unpersisted: usize,
    /// Moves to a higher candidate within one term (legal with openraft's leader ids).
    pub same_term_moves: usize,
    /// Highest term seen.
    pub max_term: u64,
}

/// A broken invariant, with the 1-based line of the audit where it showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub line: usize,
    pub group: GroupId,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} group {}: {}", self.line, self.group, self.what)
    }
}

#[derive(Default)]
struct GroupTrack {
    durable: Option<AuditVote>,
    pending: Option<AuditVote>,
}

fn parse_vote(words: &[&str]) -> Result<Option<AuditVote>, String> {
    if words == ["none"] {
        return Ok(None);
    }
    let field = |name: &str| -> Result<u64, String> {
        words
            .iter()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| format!("no {name}"))?
            .parse::<u64>()
            .map_err(|e| format!("{name}: {e}"))
    };
    Ok(Some(AuditVote {
        term: field("term")?,
        voted_for: field("voted_for")?,
        committed: field("committed")? == 1,
    }))
}

/// Checks one node's audit (all its restarts, in file order). A last line without a newline is
/// ignored (cut by a crash mid-write); any other unreadable line is a violation.
pub fn check(text: &str) -> Result<AuditSummary, Vec<Violation>> {
    let mut groups: BTreeMap<GroupId, GroupTrack> = BTreeMap::new();
    let mut sum = AuditSummary::default();
    let mut bad = Vec::new();
    let complete = text.len() - text.rsplit_once('\n').map_or(text.len(), |(_, t)| t.len());
    for (i, raw) in text[..complete].lines().enumerate() {
        let line = i + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        let (event, gid, rest) = match words.as_slice() {
            [e, g, rest @ ..] => match g.strip_prefix("g=").and_then(|g| g.parse().ok()) {
                Some(gid) => (*e, gid, rest),
                None => {
                    bad.push(Violation {
                        line,
                        group: 0,
                        what: format!("unreadable: {raw}"),
                    });
                    continue;
                }
            },
            _ => {
                bad.push(Violation {
                    line,
                    group: 0,
                    what: format!("unreadable: {raw}"),
                });
                continue;
            }
        };
        let mut fail = |what: String| {
            bad.push(Violation {
                line,
                group: gid,
                what,
            })
        };
        let vote = match parse_vote(rest) {
            Ok(v) => v,
            Err(e) => {
                fail(format!("unreadable vote ({e}): {raw}"));
                continue;
            }
        };
        let t = groups.entry(gid).or_default();
        sum.max_term = sum.max_term.max(vote.map_or(0, |v| v.term));
        match (event, vote) {
            ("boot", recovered) => {
                sum.boots += 1;
                if let Some(d) = t.durable {
                    if recovered < Some(d) {
                        fail(format!(
                            "restarted with {} after {d} was saved: a persisted vote was lost",
                            recovered.map_or("no vote".into(), |v| v.to_string())
                        ));
                    }
                }
                if t.pending.is_some_and(|p| recovered < Some(p)) {
                    sum.unpersisted += 1;
                }
                // After a loss, keep checking against what had been saved.
                t.durable = t.durable.max(recovered);
                t.pending = None;
            }
            ("intent", Some(v)) => {
                if let Some(d) = t.durable {
                    if v < d {
                        fail(format!("voted {v} after {d}: double vote"));
                    } else if v.term == d.term && v.voted_for != d.voted_for {
                        sum.same_term_moves += 1;
                    }
                }
                t.pending = Some(v);
            }
            ("saved", Some(v)) => {
                if t.pending != Some(v) {
                    fail(format!("saved {v} without a matching intent"));
                }
                sum.saved += 1;
                t.durable = Some(v);
                t.pending = None;
            }
            _ => fail(format!("unreadable: {raw}")),
        }
    }
    if bad.is_empty() {
        Ok(sum)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_history_with_crashes_passes() {
        let text = "\
boot g=1 none
intent g=1 term=1 voted_for=1 committed=0
saved g=1 term=1 voted_for=1 committed=0
intent g=1 term=1 voted_for=1 committed=1
saved g=1 term=1 voted_for=1 committed=1
intent g=1 term=2 voted_for=2 committed=0
saved g=1 term=2 voted_for=2 committed=0
intent g=1 term=2 voted_for=3 committed=0
saved g=1 term=2 voted_for=3 committed=0
intent g=1 term=3 voted_for=3 committed=0
boot g=1 term=2 voted_for=3 committed=0
intent g=1 term=3 voted_for=2 committed=0
saved g=1 term=3 voted_for=2 committed=0
boot g=2 none
intent g=2 term=1 voted_for=1 comm";
        let sum = check(text).unwrap();
        assert_eq!(sum.saved, 5);
        assert_eq!(sum.boots, 3);
        // term 3 for node 3 was announced, lost in the crash and never acted upon.
        assert_eq!(sum.unpersisted, 1);
        assert_eq!(sum.same_term_moves, 1);
        assert_eq!(sum.max_term, 3);
    }

    #[test]
    fn a_double_vote_in_one_term_fails() {
        let text = "\
boot g=4 none
intent g=4 term=5 voted_for=3 committed=0
saved g=4 term=5 voted_for=3 committed=0
intent g=4 term=5 voted_for=2 committed=0
saved g=4 term=5 voted_for=2 committed=0
";
        let bad = check(text).unwrap_err();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!((bad[0].line, bad[0].group), (4, 4));
        assert!(bad[0].what.contains("double vote"), "{}", bad[0]);
    }

    #[test]
    fn a_vote_lost_across_a_restart_fails() {
        let text = "\
boot g=1 none
intent g=1 term=5 voted_for=3 committed=0
saved g=1 term=5 voted_for=3 committed=0
boot g=1 term=4 voted_for=1 committed=1
intent g=1 term=5 voted_for=2 committed=0
saved g=1 term=5 voted_for=2 committed=0
";
        let bad = check(text).unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!((bad[0].line, bad[1].line), (4, 5));
        assert!(bad[0].what.contains("lost"), "{}", bad[0]);
        assert!(bad[1].what.contains("double vote"), "{}", bad[1]);
    }

    #[test]
    fn garbage_is_reported() {
        let bad = check("boot g=1 none\nhello\nsaved g=x none\nintent g=1 term=a\n").unwrap_err();
        assert_eq!(
            bad.iter().map(|v| v.line).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
    }
}
