//! The `env` example function as a standalone binary.

fn main() {
    fjord_examples::env::run();
}
