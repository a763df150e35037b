//! Generated names: Magnum's random `<greek>-<n>-template|cluster` defaults. (Heat stack names
//! are magnum-drivers' `stack_name`, which the conductor's `apply()` and driver use.)
use rand::Rng;

const LETTERS: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// `NameGenerator().generate() + '-' + suffix`, e.g. `zeta-22-cluster`.
pub fn random_name(suffix: &str) -> String {
    let mut rng = rand::thread_rng();
    let letter = LETTERS[rng.gen_range(0..LETTERS.len())];
    let n: u32 = rng.gen_range(1..=24);
    format!("{letter}-{n}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names() {
        let n = random_name("cluster");
        assert!(n.ends_with("-cluster"));
        let (letter, rest) = n.split_once('-').unwrap();
        assert!(LETTERS.contains(&letter));
        let num: u32 = rest.trim_end_matches("-cluster").parse().unwrap();
        assert!((1..=24).contains(&num));
    }
}
