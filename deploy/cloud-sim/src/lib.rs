//! magnum-cloud-sim
