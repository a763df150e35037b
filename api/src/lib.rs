//! magnum-api
