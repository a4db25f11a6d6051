// Build a JavaScript plugin for lbx into a Wasm component: bundle the entry with the SDK into
// one module, then componentize it with one of two engines.
//
// Usage: node build.mjs ENTRY.js WIT_DIR OUT.wasm [--engine starlingmonkey|qjs]   (build.sh calls it)
//
// - starlingmonkey (the default): SpiderMonkey through componentize-js, with its `http` and
//   `fetch-event` features disabled (lbx offers no wasi:http). The only engine whose
//   components lbx runs today.
// - qjs: QuickJS through componentize-qjs, built `sync` (lbx's host does not enable the
//   component-model async ABI). Kept for measurement: componentize-qjs 0.4.5's sync runtime
//   releases the `borrow<request>` that `choose` receives only after the call has returned
//   (when its call context is freed), and wasmtime traps such a call ("borrow handles still
//   remain at the end of the call"); its async runtime needs component-model async, which lbx
//   disables. docs/plugins.md, section 8, has the measurements.
//
// Both are called as libraries: `jco componentize` could not read the WIT through its sandboxed
// wasm-tools here. The bundle (rolldown) keeps the host's interfaces (`lbx:router/...`) as
// imports and inlines everything else, so neither engine resolves packages at build time.
// QuickJS writes no producer metadata of its own, so the build adds `language: JavaScript` and
// the engine's name, which `lbx check` reports. Each engine's package is loaded only when
// used.
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { rolldown } from "rolldown";

const args = process.argv.slice(2);
const engineAt = args.indexOf("--engine");
const engine = engineAt >= 0 ? args.splice(engineAt, 2)[1] : "starlingmonkey";
const [entry, wit, out] = args;
if (!entry || !wit || !out || !["qjs", "starlingmonkey"].includes(engine)) {
  console.error("usage: node build.mjs ENTRY.js WIT_DIR OUT.wasm [--engine starlingmonkey|qjs]");
  process.exit(2);
}

const work = await mkdtemp(join(tmpdir(), "lbx-js-build-"));
try {
  const bundlePath = join(work, "plugin.bundle.js");
  const bundle = await rolldown({ input: resolve(entry), external: [/^lbx:router\//], logLevel: "warn" });
  await bundle.write({ file: bundlePath, format: "esm" });
  await bundle.close();

  let component;
  if (engine === "qjs") {
    const { componentize: componentizeQjs } = await import("componentize-qjs");
    const { metadataAdd } = await import("@bytecodealliance/jco");
    const pkg = JSON.parse(readFileSync(new URL("./node_modules/componentize-qjs/package.json", import.meta.url)));
    ({ component } = await componentizeQjs({
      witPath: resolve(wit),
      jsSource: readFileSync(bundlePath, "utf8"),
      jsPath: bundlePath,
      world: "plugin",
      sync: true,
    }));
    // The tool first: `lbx check` reports the first producer that names the language.
    component = await metadataAdd(component, [
      ["processed-by", [["componentize-qjs", pkg.version]]],
      ["language", [["JavaScript", ""]]],
    ]);
  } else {
    const { componentize: componentizeSm } = await import("@bytecodealliance/componentize-js");
    ({ component } = await componentizeSm({
      sourcePath: bundlePath,
      witPath: resolve(wit),
      worldName: "plugin",
      disableFeatures: ["http", "fetch-event"],
    }));
  }
  writeFileSync(out, component);
  console.log(`built ${out} with ${engine} (${component.length} bytes)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
