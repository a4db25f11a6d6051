//! Gives the WASI preview1 adapter memory of its own inside a Go module.
//!
//! The adapter that turns a wasip1 module into a component needs memory for its state at its
//! first WASI call, and it asks the module for it: through the module's `cabi_realloc`, or, with
//! `realloc_via_memory_grow`, by growing the linear memory itself. Neither works with Go: Go's
//! first WASI call (its clock, inside `_initialize`) comes before Go's runtime can run any
//! exported Go function, so calling `cabi_realloc` then makes the runtime throw; and Go's
//! allocator believes every byte above its static data is its own (`initBloc`: `blocMax =
//! bloc`, never the memory's size), so a page the adapter grows is later handed out by Go's heap
//! too.
//!
//! So the Go SDK reserves an array in Go's static data (never part of Go's heap), its first 16
//! bytes a marker, and this module finds the array by its marker in the data segments and adds a
//! `cabi_realloc_adapter` function — which wit-component gives the adapter instead of the
//! module's `cabi_realloc` — that allocates from it: a bump allocator whose cursor is the array's
//! first word, trapping if the array is ever exhausted.
use anyhow::{Context, Result, bail};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemArg, Module,
    RawSection, ValType,
};
use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef};

/// The marker the Go SDK writes at the start of the array (sdk/go/lbxrouter/adapter_arena.go).
pub const MARKER: &[u8; 16] = b"lbx:adapter-mem\x01";
/// The array's size: the adapter's state is ~10 KiB; twice the headroom of a page.
pub const ARENA_BYTES: u32 = 256 * 1024;

/// `module` with `cabi_realloc_adapter` exported, allocating from the marked array.
pub fn add_adapter_allocator(module: &[u8]) -> Result<Vec<u8>> {
    let arena = find_arena(module)?;
    let mut realloc_type = None;
    let mut imported_functions = 0u32;
    let mut defined_functions = 0u32;
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::TypeSection(reader) => {
                for (index, ty) in reader.into_iter_err_on_gc_types().enumerate() {
                    let ty = ty?;
                    if ty.params() == [wasmparser::ValType::I32; 4]
                        && ty.results() == [wasmparser::ValType::I32]
                    {
                        realloc_type.get_or_insert(index as u32);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import?.ty, TypeRef::Func(_)) {
                        imported_functions += 1;
                    }
                }
            }
            Payload::FunctionSection(reader) => defined_functions = reader.count(),
            _ => {}
        }
    }
    let realloc_type = realloc_type
        .context("the module has no (i32, i32, i32, i32) -> i32 type: no cabi_realloc export?")?;
    let new_function = imported_functions + defined_functions;

    let mut out = Module::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match &payload {
            Payload::FunctionSection(reader) => {
                let mut functions = FunctionSection::new();
                for ty in reader.clone() {
                    functions.function(ty?);
                }
                functions.function(realloc_type);
                out.section(&functions);
            }
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader.clone() {
                    let export = export?;
                    let kind = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => ExportKind::Tag,
                    };
                    exports.export(export.name, kind, export.index);
                }
                exports.export("cabi_realloc_adapter", ExportKind::Func, new_function);
                out.section(&exports);
            }
            Payload::CodeSectionStart {
                unchecked_range: range,
                ..
            } => {
                // Bodies are copied as bytes, the allocator appended as the last function.
                let bytes = &module[range.start as usize..range.end as usize];
                let reader = wasmparser::CodeSectionReader::new(wasmparser::BinaryReader::new(
                    bytes,
                    range.start,
                ))?;
                let mut code = CodeSection::new();
                for body in reader {
                    code.raw(body?.as_bytes());
                }
                code.function(&bump_allocator(arena));
                out.section(&code);
            }
            Payload::CodeSectionEntry(_) => {}
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &module[range.start as usize..range.end as usize],
                    });
                }
            }
        }
    }
    Ok(out.finish())
}

/// The address of the marked array: an active data segment of memory 0 holding the marker.
fn find_arena(module: &[u8]) -> Result<u32> {
    let mut found = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::DataSection(reader) = payload? {
            for data in reader {
                let data = data?;
                let wasmparser::DataKind::Active { offset_expr, .. } = data.kind else {
                    continue;
                };
                let Some(Ok(Operator::I32Const { value })) =
                    offset_expr.get_operators_reader().into_iter().next()
                else {
                    continue;
                };
                for (at, window) in data.data.windows(MARKER.len()).enumerate() {
                    if window == MARKER {
                        found.push(value as u32 + at as u32);
                    }
                }
            }
        }
    }
    match found.as_slice() {
        [address] if address % 8 == 0 => Ok(*address),
        [address] => bail!("the adapter's memory at {address:#x} is not 8-byte aligned"),
        [] => bail!(
            "no memory reserved for the WASI adapter: the module must be built with the lbx Go \
             SDK (lbxrouter), which reserves it"
        ),
        _ => bail!("the adapter's memory marker appears {} times", found.len()),
    }
}

/// `cabi_realloc_adapter(old, old_size, align, new_size) -> ptr`, bump-allocating from the
/// array at `arena`. After the 16-byte marker, 16 bytes of header: its first word is the next
/// free address (0 before the first call); allocations start at `arena + 32`.
fn bump_allocator(arena: u32) -> Function {
    use Instruction::*;
    let (old, old_size, align, new_size, start) = (0, 1, 2, 3, 4);
    let word = |offset| MemArg {
        offset,
        align: 2,
        memory_index: 0,
    };
    let mut f = Function::new([(1, ValType::I32)]);
    let cursor = arena + 16;
    let first_free = (arena + 32) as i32;
    let end = (arena + ARENA_BYTES) as i32;
    // start = cursor, or the first byte after the header on the first call.
    f.instruction(&I32Const(cursor as i32))
        .instruction(&I32Load(word(0)))
        .instruction(&LocalTee(start))
        .instruction(&I32Eqz)
        .instruction(&If(wasm_encoder::BlockType::Empty))
        .instruction(&I32Const(first_free))
        .instruction(&LocalSet(start))
        .instruction(&End);
    // start = (start + align - 1) & -align
    f.instruction(&LocalGet(start))
        .instruction(&LocalGet(align))
        .instruction(&I32Add)
        .instruction(&I32Const(1))
        .instruction(&I32Sub)
        .instruction(&I32Const(0))
        .instruction(&LocalGet(align))
        .instruction(&I32Sub)
        .instruction(&I32And)
        .instruction(&LocalSet(start));
    // Exhausted: trap rather than write past the array.
    f.instruction(&LocalGet(start))
        .instruction(&LocalGet(new_size))
        .instruction(&I32Add)
        .instruction(&I32Const(end))
        .instruction(&I32GtU)
        .instruction(&If(wasm_encoder::BlockType::Empty))
        .instruction(&Unreachable)
        .instruction(&End);
    // cursor = start + new_size
    f.instruction(&I32Const(cursor as i32))
        .instruction(&LocalGet(start))
        .instruction(&LocalGet(new_size))
        .instruction(&I32Add)
        .instruction(&I32Store(word(0)));
    // A reallocation keeps the old bytes.
    f.instruction(&LocalGet(old))
        .instruction(&If(wasm_encoder::BlockType::Empty))
        .instruction(&LocalGet(start))
        .instruction(&LocalGet(old))
        .instruction(&LocalGet(old_size))
        .instruction(&MemoryCopy {
            src_mem: 0,
            dst_mem: 0,
        })
        .instruction(&End);
    f.instruction(&LocalGet(start)).instruction(&End);
    f
}
