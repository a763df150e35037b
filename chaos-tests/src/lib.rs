//! magnum-chaos-tests
