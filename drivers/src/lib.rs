//! magnum-drivers
