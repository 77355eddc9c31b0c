//! The fuzz checks on stable: every input of the committed corpus, then
//! mutations of it from a seeded generator. `FUZZ_SEED` repeats a run
//! (the seed is printed), `FUZZ_ITERATIONS` sets the mutations per target.
//! An input that fails is written to `target/fuzz-failures/`; once fixed,
//! it goes into `corpus/<target>/` as a regression test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use towerpost_fuzz::mutate::{Rng, mutate};
use towerpost_fuzz::{TARGETS, Target};

/// Longest mutated input: past every line and record limit.
const MAX_LEN: usize = 256 * 1024;

fn corpus(target: &Target) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target.name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("corpus file"))
        .collect();
    assert!(!inputs.is_empty(), "{}: an empty corpus", dir.display());
    inputs
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `target.check` on `input`, keeping the input when it fails.
fn run(target: &Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| (target.check)(input))).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
        std::fs::create_dir_all(&dir).expect("failures directory");
        let file = dir.join(format!("{}-{what}", target.name));
        std::fs::write(&file, input).expect("write the failing input");
        panic!(
            "{}: {what} failed; the input is in {}",
            target.name,
            file.display()
        );
    }
}

fn seeded(name: &str, default_iterations: u64) {
    let target = TARGETS.iter().find(|t| t.name == name).expect("a target");
    let inputs = corpus(target);
    for (i, input) in inputs.iter().enumerate() {
        run(target, input, &format!("corpus-{i}"));
    }
    let seed = setting("FUZZ_SEED", 0x7067_6f77_6572_7431);
    let iterations = setting("FUZZ_ITERATIONS", default_iterations);
    println!(
        "{name}: {} corpus inputs, {iterations} mutations, FUZZ_SEED={seed}",
        inputs.len()
    );
    let mut rng = Rng::new(seed ^ name.len() as u64);
    for n in 0..iterations {
        let mut input = inputs[rng.below(inputs.len())].clone();
        // Mutations of mutations reach further from the seeds.
        for _ in 0..1 + rng.below(3) {
            input = mutate(&mut rng, &input, target.tokens, MAX_LEN);
        }
        run(target, &input, &format!("seed-{seed}-{n}"));
    }
}

#[test]
fn session_input() {
    seeded("session_input", 3_000);
}

#[test]
fn reply_parser() {
    seeded("reply_parser", 20_000);
}

#[test]
fn config_loader() {
    seeded("config_loader", 1_000);
}

#[test]
fn queue_record() {
    seeded("queue_record", 10_000);
}

#[test]
fn control_request() {
    seeded("control_request", 10_000);
}

#[test]
fn every_target_has_a_test_and_a_fuzz_target() {
    let libfuzzer = Path::new(env!("CARGO_MANIFEST_DIR")).join("libfuzzer");
    let manifest =
        std::fs::read_to_string(libfuzzer.join("Cargo.toml")).expect("libfuzzer/Cargo.toml");
    let tests = include_str!("seeded.rs");
    for target in TARGETS {
        assert!(
            tests.contains(&format!("seeded(\"{}\"", target.name)),
            "{}: no seeded test",
            target.name
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "{}: no fuzz target",
            target.name
        );
        assert!(
            libfuzzer
                .join("fuzz_targets")
                .join(format!("{}.rs", target.name))
                .exists()
        );
    }
}
