//! One-line reasons for a refused or failed plugin, for the log, `lbx check`, `lbx validate`,
//! the admin API's JSON and `lbx reload`.
//!
//! wasmtime's and wasmparser's errors are written for a developer's terminal: a file that is
//! not Wasm at all is reported with a pretty-printed dump of the expected and actual header
//! bytes over ten lines, and a trap carries a multi-line Wasm backtrace. A reason here is one
//! line an operator can act on: what the file is (or is not), or what the plugin did.

use std::fmt::Write as _;

/// The first bytes of every Wasm binary, core module or component.
const WASM_MAGIC: &[u8] = b"\0asm";

/// A core module's layer and version, after the magic.
const CORE_MODULE_VERSION: &[u8] = b"\x01\0\0\0";

/// Why `bytes` cannot be a Wasm component, told from its first bytes before the compiler is
/// asked; `None` when the header is a component's (or one the compiler should judge). The
/// reason follows "is not a valid WebAssembly component: ".
pub fn not_a_component(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".into());
    }
    let magic_len = bytes.len().min(WASM_MAGIC.len());
    if bytes[..magic_len] != WASM_MAGIC[..magic_len] {
        return Some(format!(
            "the file starts with `{}`, not the Wasm magic bytes `\\0asm`",
            first_bytes(bytes)
        ));
    }
    if bytes.len() < WASM_MAGIC.len() + CORE_MODULE_VERSION.len() {
        return Some(format!(
            "the file is cut off after {} bytes, inside the Wasm header",
            bytes.len()
        ));
    }
    if bytes[WASM_MAGIC.len()..].starts_with(CORE_MODULE_VERSION) {
        return Some(
            "it is a core Wasm module, not a component; build the plugin for wasm32-wasip2, or \
             wrap it with `wasm-tools component new`"
                .into(),
        );
    }
    None
}

/// Up to the first 8 bytes, printable ASCII as is and the rest escaped (`hello\n`,
/// `\x7fELF\x02\x01\x01\x00`).
fn first_bytes(bytes: &[u8]) -> String {
    let mut shown = String::new();
    for byte in bytes.iter().take(8) {
        let _ = write!(shown, "{}", byte.escape_ascii());
    }
    if bytes.len() > 8 {
        shown.push('…');
    }
    shown
}

/// Why the compiler refused a component, on one line; a file that ends too early says so
/// first (wasmparser calls every binary a "module").
pub fn compile_failure(error: &wasmtime::Error) -> String {
    let reason = one_line(error);
    if reason.contains("unexpected end-of-file") {
        format!("the file is cut off ({reason})")
    } else {
        reason
    }
}

/// `error` and its causes on one line. A trap is told by its kind alone: the Wasm backtrace
/// that wasmtime attaches names guest-internal functions an operator cannot act on (it stays
/// available at `debug` where the error is first seen).
pub fn one_line(error: &wasmtime::Error) -> String {
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return format!("wasm trap: {}", trap_text(trap));
    }
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = collapse(&cause.to_string());
        if text.is_empty() || text.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        // Each layer of context often repeats its cause.
        if parts.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// A trap's own words, without the `wasm trap: ` some versions put in front.
fn trap_text(trap: &wasmtime::Trap) -> String {
    let text = trap.to_string();
    text.strip_prefix("wasm trap: ")
        .unwrap_or(&text)
        .to_string()
}

/// `text` with every run of whitespace (newlines and indentation included) as one space.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_a_component_and_its_first_bytes_are_named_on_one_line() {
        let reason = not_a_component(b"hello world\n").unwrap();
        assert_eq!(
            reason,
            "the file starts with `hello wo…`, not the Wasm magic bytes `\\0asm`"
        );
        let reason = not_a_component(b"hi\n").unwrap();
        assert!(reason.contains("`hi\\n`"), "{reason}");
        let reason = not_a_component(b"\x7fELF\x02\x01\x01\x00\x00").unwrap();
        assert!(
            reason.contains("`\\x7fELF\\x02\\x01\\x01\\x00…`"),
            "{reason}"
        );
    }

    #[test]
    fn empty_cut_off_and_core_module_files_each_say_what_they_are() {
        assert!(not_a_component(b"").unwrap().contains("empty"));
        assert!(
            not_a_component(b"\0as")
                .unwrap()
                .contains("cut off after 3 bytes")
        );
        assert!(not_a_component(b"\0asm\x0d").unwrap().contains("cut off"));
        assert!(
            not_a_component(b"\0asm\x01\0\0\0")
                .unwrap()
                .contains("core Wasm module")
        );
    }

    #[test]
    fn a_component_header_is_left_to_the_compiler() {
        assert_eq!(not_a_component(b"\0asm\x0d\0\x01\0"), None);
    }

    #[test]
    fn an_error_chain_becomes_one_line_without_repeats() {
        let error = wasmtime::Error::msg("bad thing\n    at offset 3").context("cannot load");
        assert_eq!(one_line(&error), "cannot load: bad thing at offset 3");
    }

    #[test]
    fn a_trap_is_told_by_its_kind() {
        let error = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached)
            .context("error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g");
        let reason = one_line(&error);
        assert!(
            !reason.contains('\n') && !reason.contains("backtrace"),
            "{reason}"
        );
        assert!(
            reason.starts_with("wasm trap: ") && reason.contains("unreachable"),
            "{reason}"
        );
    }
}
