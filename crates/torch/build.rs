fn main() {
    torch_rpath::emit();
}
