#!/usr/bin/env bun
import { freshBuild } from "../build/fresh.ts";
import { PACKAGE_ROOT } from "../package-root.ts";

// The CLI, every command, the server included: from its build in dist/ when
// that was made from these very sources (src/build/bundle.ts), which keeps
// some memory off a gateway (docs/operations.md, Memory); otherwise from
// the sources. The same code either way.
await import(freshBuild(PACKAGE_ROOT) ?? "./run.ts");
