//! The fuzz targets' harnesses: each module has `run(data)`, what its target does with one input,
//! and `seeds()`, real encodings for its seed corpus (`cargo run --example seeds` writes them).
//! A target file is only `fuzz_target!(|data| magnum_fuzz::<module>::run(data))`.

pub mod api;
pub mod command;
pub mod csr;
pub mod raft;

/// `(file name, bytes)` of one seed.
pub type Seed = (String, Vec<u8>);

/// `(target name, its seeds)` for every target.
pub fn all_seeds() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("raft_envelope", raft::seeds()),
        ("forwarded_command", command::seeds()),
        ("json_validators", api::validator_seeds()),
        ("json_patch", api::patch_seeds()),
        ("labels_pylit", api::pylit_seeds()),
        ("csr", csr::seeds()),
    ]
}
