// Build router.js into a Wasm component for lbx with componentize-js (StarlingMonkey).
//
// Usage: node build.mjs router.js <wit dir> <out.wasm>  (build.sh calls it)
//
// The `jco componentize` command cannot read the WIT through its sandboxed tooling here, so
// the library is called directly. lbx offers no wasi:http, so the `http` and `fetch-event`
// features are disabled (otherwise the component would import wasi:http).
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFileSync } from "node:fs";
const [source, wit, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath: source,
  witPath: wit,
  worldName: "plugin",
  disableFeatures: ["http", "fetch-event"],
});
writeFileSync(out, component);
console.log(`built ${out} (${component.length} bytes)`);
