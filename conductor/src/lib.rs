//! magnum-conductor
