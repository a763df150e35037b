//! `--peer ID=RAFT_ADDR@SERVICE_ADDR` parsing.
use magnum_raft::NodeAddr;
use std::collections::BTreeMap;

pub fn parse(specs: &[String]) -> Result<BTreeMap<u64, NodeAddr>, String> {
    let mut out = BTreeMap::new();
    for s in specs {
        let (id, addrs) = s
            .split_once('=')
            .ok_or_else(|| format!("bad --peer {s:?}: expected ID=RAFT@SERVICE"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("bad node id in --peer {s:?}"))?;
        let (raft, service) = addrs
            .split_once('@')
            .ok_or_else(|| format!("bad --peer {s:?}: expected ID=RAFT@SERVICE"))?;
        if out
            .insert(
                id,
                NodeAddr {
                    raft: raft.to_string(),
                    service: service.to_string(),
                },
            )
            .is_some()
        {
            return Err(format!("node {id} given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_rejects() {
        let p = super::parse(&["1=127.0.0.1:1@127.0.0.1:2".into()]).unwrap();
        assert_eq!(p[&1].service, "127.0.0.1:2");
        assert!(super::parse(&["x=a@b".into()]).is_err());
        assert!(super::parse(&["1=a".into()]).is_err());
        assert!(super::parse(&["1=a@b".into(), "1=c@d".into()]).is_err());
    }
}
