//! Cluster certificates: generation of each cluster's CAs and client certificate (`certs`), CSR
//! signing (`csr`), and sealing of private keys at rest (`sealing`). Pure functions over keys and
//! PEM; nothing here knows Raft or the cloud.
pub mod certs;
pub mod cpu;
pub mod csr;
pub mod sealing;
