// The esbuild options every bundle of the charm is built with: scripts/build.mjs builds dist/ with
// them, and bench/profile.ts builds its load-only bundles with them, so what it measures is what
// ships.
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: "node",
  format: "cjs",
  // The oldest runtime dispatch accepts from PATH; the bundled one is newer.
  target: "node20",
  // Smaller is faster to load on every hook. Identifiers are not minified, so stack traces name
  // our functions without keepNames (whose __name() calls would run for each one at every load).
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: "none",
};
