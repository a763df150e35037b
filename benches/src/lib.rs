//! magnum-benches
