import { defineConfig } from "vitest/config";

// .mts: next to a package.json without "type": "module", Vite would load a .ts config as CommonJS
// and warn about its ESM syntax on every run.

// Three layers (see README): unit + charm tests are pure and fast (the tight loop: under a minute
// on 2 cores); integration runs processes: the packed charm's dispatch as Juju would, the shim's
// simulator, fault injection at every write and SIGKILL point, Debian's nova; vm boots a real
// kernel under QEMU. Each is a vitest project so the test command can run them in order and a
// failure names its layer. A test belongs to the layer of its folder.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "tests/unit/**/*.test.ts",
            "tests/charm/**/*.test.ts",
            "ops-ts-shim/tests/*.test.ts",
          ],
        },
      },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts", "ops-ts-shim/tests/integration/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "vm",
          include: ["tests/vm/**/*.test.ts"],
          setupFiles: ["tests/vm/lib/progress-setup.ts"],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
