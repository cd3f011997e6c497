//! One module per binary that has more than glue: its flags (clap), the library calls it makes
//! and how it renders their results. The binaries in `src/bin` parse and call these.

pub mod bench;
pub mod check_mic;
pub mod evaluate;
pub mod listen;
pub mod predict_file;
pub mod train;
