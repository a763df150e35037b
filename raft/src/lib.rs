//! magnum-raft
