//! The `echo` example function as a standalone binary.

fn main() {
    fjord_examples::echo::run();
}
