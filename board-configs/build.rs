//! Validates every board file at build time and embeds them, so a bad board file is a build
//! error naming the file and the field, never a surprise on a booted appliance.

use std::path::Path;
use std::{env, fs};

#[allow(
    dead_code,
    reason = "build.rs uses only the parser; the crate uses the rest"
)]
#[path = "src/schema.rs"]
mod schema;

fn main() {
    let boards_dir = Path::new("boards");
    println!("cargo:rerun-if-changed=boards");
    println!("cargo:rerun-if-changed=src/schema.rs");
    let mut files: Vec<_> = match fs::read_dir(boards_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect(),
        Err(error) => fail(&format!("cannot read board-configs/boards: {error}")),
    };
    files.sort();
    let mut generated = String::from("pub(crate) static BOARD_FILES: &[(&str, &str)] = &[\n");
    let mut ids = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let display = format!("board-configs/boards/{name}");
        let text = fs::read_to_string(path)
            .unwrap_or_else(|error| fail(&format!("{display}: cannot read: {error}")));
        match schema::parse_board(&display, &text) {
            Ok(board) => ids.push(board.id),
            Err(error) => fail(&error.to_string()),
        }
        let absolute =
            fs::canonicalize(path).unwrap_or_else(|error| fail(&format!("{display}: {error}")));
        generated.push_str(&format!("    ({name:?}, include_str!({absolute:?})),\n"));
    }
    for required in ["generic", "qemu-x86_64"] {
        if !ids.iter().any(|id| id == required) {
            fail(&format!(
                "board-configs/boards/{required}.toml is missing (every image needs it)"
            ));
        }
    }
    generated.push_str("];\n");
    let out_dir = env::var("OUT_DIR").unwrap_or_else(|_| fail("cargo did not set OUT_DIR"));
    if let Err(error) = fs::write(Path::new(&out_dir).join("boards.rs"), generated) {
        fail(&format!("cannot write the embedded board table: {error}"));
    }
}

fn fail(message: &str) -> ! {
    // A panic in build.rs prints its message in cargo's error output; that is the one
    // channel a build script has to stop the build with a readable reason.
    panic!("invalid board configuration: {message}")
}
