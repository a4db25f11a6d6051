// Build a JavaScript plugin for lbx into a Wasm component: bundle the entry with the SDK into
// one module, then componentize it with one of two engines.
//
// Usage: node build.mjs ENTRY.js WIT_DIR OUT.wasm [--engine qjs|starlingmonkey]   (build.sh calls it)
//
// - qjs (the default): QuickJS through componentize-qjs, built `sync` (lbx's host does not
//   enable the component-model async ABI). Its output needs one more step before lbx can run
//   it: componentize-qjs 0.4.5's sync runtime drops the `borrow<request>` that `choose`
//   receives only in post-return, after the call has returned, and wasmtime traps such a call
//   ("borrow handles still remain at the end of the call"). `lbx plugin component --lang
//   quickjs` (tools/plugin-tools `quickjs-fix` in this repository) rewrites the component to
//   drop it before returning; build.sh runs it. ~3.5x quicker per decision than StarlingMonkey,
//   ~6x smaller, and no ~20 ms collection pauses (docs/plugins.md, section 11).
// - starlingmonkey: SpiderMonkey through componentize-js, with its `http` and `fetch-event`
//   features disabled (lbx offers no wasi:http); runs as built. Give its plugins a decision
//   deadline above its collection pauses (`[plugin] deadline = "50ms"`).
//
// Both are called as libraries: `jco componentize` could not read the WIT through its sandboxed
// wasm-tools here. The bundle (rolldown) keeps the host's interfaces (`lbx:router/...`) as
// imports and inlines everything else, so neither engine resolves packages at build time.
// QuickJS writes no producer metadata of its own, so the build adds `language: JavaScript` and
// the engine's name, which `lbx check` reports. Each engine's package is loaded only when
// used, so a project may install only the one it builds with.
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { rolldown } from "rolldown";

const args = process.argv.slice(2);
const engineAt = args.indexOf("--engine");
const engine = engineAt >= 0 ? args.splice(engineAt, 2)[1] : "qjs";
const [entry, wit, out] = args;
if (!entry || !wit || !out || !["qjs", "starlingmonkey"].includes(engine)) {
  console.error("usage: node build.mjs ENTRY.js WIT_DIR OUT.wasm [--engine qjs|starlingmonkey]");
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
