fn main() {
    build_support::test_gates();
}
