//! `gguf-tool`: writes the tiny GGUF fixture and prints what the reader finds in a file.
//!
//!   gguf-tool tiny <architecture> <out.gguf>      write fixture::tiny_model(architecture)
//!   gguf-tool summary <file.gguf> [ctx] [slots]   header summary and the VRAM estimate
//!
//! `cargo run -q -p llama-orch-gguf --bin gguf-tool -- tiny llama examples/models/tiny.gguf`
//! regenerates the committed example model.

use std::path::Path;
use std::process::ExitCode;

use llorch_gguf::{estimate, fixture, read_summary};

const USAGE: &str =
    "usage: gguf-tool tiny <architecture> <out.gguf> | gguf-tool summary <file.gguf> [ctx-size] [slots]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["tiny", arch, out] => {
            std::fs::write(out, fixture::tiny_model(arch)).map_err(|e| format!("writing {out}: {e}"))
        }
        ["summary", file, rest @ ..] if rest.len() <= 2 => summary(file, rest),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gguf-tool: {message}");
            ExitCode::from(2)
        }
    }
}

fn summary(file: &str, rest: &[&str]) -> Result<(), String> {
    let number = |i: usize, default: u32| -> Result<u32, String> {
        rest.get(i).map_or(Ok(default), |s| {
            s.parse().map_err(|e| format!("'{s}' is not a number: {e}"))
        })
    };
    let (ctx, slots) = (number(0, 2048)?, number(1, 1)?);
    let s = read_summary(Path::new(file)).map_err(|e| e.to_string())?;
    println!("{s:#?}");
    println!("kv_bytes_per_token: {}", s.kv_bytes_per_token());
    let v = estimate(s.tensor_bytes, s.kv_bytes_per_token(), ctx, slots);
    println!("estimate at --ctx-size {ctx} --parallel {slots}: {v:#?}");
    Ok(())
}
