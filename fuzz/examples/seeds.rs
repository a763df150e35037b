//! Writes the seed corpora: `cargo run --example seeds -- <dir>` makes `<dir>/<target>/<seed>`
//! from real encodings (`magnum_fuzz::all_seeds`).
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    for (target, seeds) in magnum_fuzz::all_seeds() {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for (name, bytes) in &seeds {
            std::fs::write(d.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
