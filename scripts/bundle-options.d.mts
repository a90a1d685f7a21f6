import type { BuildOptions } from "esbuild";

/** The esbuild options every bundle of the charm is built with (scripts/bundle-options.mjs). */
export declare const BUNDLE_OPTIONS: BuildOptions;
