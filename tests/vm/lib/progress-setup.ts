// vitest setup file of the vm project: names each scenario as it starts (see lib/progress.ts).
import path from "node:path";
import { beforeEach } from "vitest";
import { progress } from "./progress";

beforeEach((ctx) => {
  const file = path.basename(ctx.task.file.name);
  progress(`${file} > ${ctx.task.name}`);
});
