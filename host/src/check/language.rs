//! Which language (and toolchain) made a plugin, read from the `producers` custom sections of
//! the component and of every core module inside it — the tool-conventions metadata each
//! toolchain writes (`language`, `processed-by`, `sdk`) — and from the names the component
//! gives its core modules.
//!
//! The fields alone mislead: a Rust plugin stripped of rustc's own section still names
//! `wit-bindgen-rust`, but its WASI adapter names `wit-bindgen-c` too, and a JavaScript or Python
//! plugin carries the C and Rust of its engine. So the interpreters decide first, then Rust's
//! marks, then Go's, then C's. componentize-py (0.25) writes no producer of its own: a Python
//! plugin is known by the interpreter it links, a core module named `libpython3.14.so`.
//! ComponentizeJS names itself and `language: JavaScript`; componentize-qjs (QuickJS) writes
//! nothing of its own, so lbx's JavaScript build adds `processed-by: componentize-qjs` and
//! `language: JavaScript` (examples/js/header_router/build.mjs). A WASI adapter's own entries
//! (Rust) are not read: they describe the adapter, not the plugin.

use wasmparser::{ComponentName, Encoding, KnownCustom, Parser, Payload};

/// One `producers` entry: a field (`language`, `processed-by`, `sdk`), a name and a version;
/// or a core module's name in the component (field `module`, no version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    pub field: String,
    pub name: String,
    pub version: String,
}

/// Every `producers` entry and core module name in a component and its nested modules and
/// components, in order, without repeats. Unreadable sections are skipped: this is for a
/// report, not a validation.
///
/// The entries of a WASI adapter module (named `wit-component:adapter:...` by the component)
/// are left out: the preview1 adapter is written in Rust and says so (`language: Rust`,
/// `processed-by: rustc`), which would name every plugin wrapped with it (a C plugin built
/// with clang for wasm32-wasi) Rust.
pub fn producers(bytes: &[u8]) -> Vec<Producer> {
    // Each entry with the index of the top-level core module it came from, if any.
    let mut entries: Vec<(Option<u32>, Producer)> = Vec::new();
    let mut adapters: Vec<u32> = Vec::new();
    // One frame per module or component being read: the top-level module's index, or None.
    let mut frames: Vec<Option<u32>> = Vec::new();
    let mut next_module = 0;
    let mut add = |module: Option<u32>, field: &str, name: &str, version: &str| {
        let producer = Producer {
            field: field.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        };
        entries.push((module, producer));
    };
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            continue;
        };
        match payload {
            Payload::Version { encoding, .. } => {
                let top_level_module = encoding == Encoding::Module && frames.len() == 1;
                frames.push(top_level_module.then(|| {
                    next_module += 1;
                    next_module - 1
                }));
            }
            Payload::End(_) => {
                frames.pop();
            }
            Payload::CustomSection(section) => {
                let module = frames.iter().rev().find_map(|frame| *frame);
                match section.as_known() {
                    KnownCustom::Producers(reader) => {
                        for field in reader.into_iter().flatten() {
                            for value in field.values.into_iter().flatten() {
                                add(module, field.name, value.name, value.version);
                            }
                        }
                    }
                    KnownCustom::ComponentName(reader) => {
                        for names in reader.into_iter().flatten() {
                            if let ComponentName::CoreModules(modules) = names {
                                for naming in modules.into_iter().flatten() {
                                    if naming.name.starts_with("wit-component:adapter:") {
                                        adapters.push(naming.index);
                                    }
                                    add(None, "module", naming.name, "");
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut found: Vec<Producer> = Vec::new();
    for (module, producer) in entries {
        let from_adapter = module.is_some_and(|index| adapters.contains(&index));
        if !from_adapter && !found.contains(&producer) {
            found.push(producer);
        }
    }
    found
}

/// The plugin's language and the producer that says so (`("Rust", "wit-bindgen-rust 0.45.0")`),
/// or `None` when no known mark is present.
pub fn language(producers: &[Producer]) -> Option<(&'static str, String)> {
    // Most specific first.
    let rules: [(&str, Marks); 6] = [
        ("Python", |p| {
            name_has(p, "componentize-py")
                || is_language(p, "python")
                || p.field == "module" && p.name.starts_with("libpython")
        }),
        ("JavaScript", |p| {
            name_has(p, "componentizejs")
                || name_has(p, "componentize-js")
                || name_has(p, "componentize-qjs")
                || name_has(p, "starlingmonkey")
                || is_language(p, "javascript")
        }),
        ("Rust", |p| {
            name_has(p, "wit-bindgen-rust") || name_has(p, "rustc") || is_language(p, "rust")
        }),
        ("Go", |p| {
            name_has(p, "tinygo")
                || is_language(p, "go")
                || p.field == "processed-by" && p.name == "go"
        }),
        ("C++", |p| is_language(p, "c++")),
        ("C", |p| {
            name_has(p, "wit-bindgen-c") || name_has(p, "clang") || is_language(p, "c")
        }),
    ];
    rules.iter().find_map(|(language, marks)| {
        producers.iter().find(|p| marks(p)).map(|p| {
            (
                *language,
                format!("{} {}", p.name, p.version).trim().to_string(),
            )
        })
    })
}

/// Whether a producer marks a language.
type Marks = fn(&Producer) -> bool;

fn name_has(producer: &Producer, needle: &str) -> bool {
    producer.name.to_ascii_lowercase().contains(needle)
}

/// `language: C11` is C, `language: C_plus_plus` C++, as the tool conventions spell them.
fn is_language(producer: &Producer, language: &str) -> bool {
    if producer.field != "language" {
        return false;
    }
    let name = producer.name.to_ascii_lowercase();
    match language {
        "c" => {
            name == "c"
                || name.starts_with("c89")
                || name.starts_with("c99")
                || name.starts_with("c1")
                || name.starts_with("c2")
        }
        "c++" => name.starts_with("c_plus_plus") || name.starts_with("c++"),
        other => name == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(field: &str, name: &str, version: &str) -> Producer {
        Producer {
            field: field.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn a_rust_plugin_is_rust_though_its_adapter_names_wit_bindgen_c() {
        let found = [
            producer("processed-by", "wit-component", "0.244.0"),
            producer("processed-by", "wit-bindgen-c", "0.51.0"),
            producer("processed-by", "wit-bindgen-rust", "0.45.0"),
        ];
        assert_eq!(
            language(&found),
            Some(("Rust", "wit-bindgen-rust 0.45.0".into()))
        );
    }

    #[test]
    fn component_builders_win_over_the_languages_of_their_engines() {
        // What componentize-py 0.25 and ComponentizeJS 0.22 write.
        let python = [
            producer("language", "Rust", ""),
            producer("processed-by", "rustc", "1.75.0"),
            producer("processed-by", "component-init-transform", "0.2.0"),
            producer("module", "libcomponentize_py_runtime.so", ""),
            producer("module", "libpython3.14.so", ""),
        ];
        assert_eq!(
            language(&python),
            Some(("Python", "libpython3.14.so".into()))
        );
        let js = [
            producer("language", "C_plus_plus_14", ""),
            producer("processed-by", "wit-bindgen-c", "0.52.0"),
            producer("processed-by", "ComponentizeJS", "0.22.0"),
        ];
        assert_eq!(
            language(&js),
            Some(("JavaScript", "ComponentizeJS 0.22.0".into()))
        );
        // componentize-qjs 0.4.5's QuickJS engine is Rust (rquickjs); lbx's build adds the rest.
        let quickjs = [
            producer("language", "Rust", ""),
            producer("processed-by", "rustc", "1.96.0"),
            producer("processed-by", "componentize-qjs", "0.4.5"),
            producer("language", "JavaScript", ""),
        ];
        assert_eq!(
            language(&quickjs),
            Some(("JavaScript", "componentize-qjs 0.4.5".into()))
        );
        let c = [
            producer("language", "C11", ""),
            producer("processed-by", "clang", "14.0.6"),
        ];
        assert_eq!(language(&c), Some(("C", "C11".into())));
        assert_eq!(
            language(&[producer("processed-by", "wit-component", "1")]),
            None
        );
    }

    #[test]
    fn the_shipped_rust_plugin_reads_as_rust() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../plugins/least_conn.wasm"
        ))
        .unwrap();
        assert_eq!(language(&producers(&bytes)).unwrap().0, "Rust");
    }
}
