//! The `jobs` example function as a standalone binary.

fn main() {
    fjord_examples::jobs::run();
}
