//! The `sleep` example function as a standalone binary.

fn main() {
    fjord_examples::sleep::run();
}
