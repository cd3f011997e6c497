fn main() {
    build_support::torch_rpath();
    build_support::test_gates();
}
