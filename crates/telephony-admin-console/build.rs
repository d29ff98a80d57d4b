//! Rebuilds the crate when the built console changes: `include_dir!` alone does not tell cargo
//! which files it read.

fn main() {
    println!("cargo::rerun-if-changed=web/dist");
}
