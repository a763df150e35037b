//! magnum-proto
