//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! files it finds at compile time, but cargo only notices edits to files it
//! already embedded, not new files in the directories.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
