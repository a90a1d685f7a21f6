/** Reading an action's results in the VM tests: the nested tree action-set's dotted keys make. */

/** An action's results, nested as the charm built them. */
export type Tree = { [k: string]: string | Tree };

/** A PCI address as a result key (action-set keys allow no `:` or `.`): `0000-00-03-0`. */
export const key = (address: string) => address.replace(/[:.]/g, "-");

/** The results of a recorded action run. */
export const results = (run: { action: { results: Record<string, unknown> } }) =>
  run.action.results as Tree;

/** The subtree at `path`; throws naming the path when it is missing or not a subtree. */
export const sub = (tree: Tree, ...path: string[]): Tree => {
  let at: Tree = tree;
  for (const p of path) {
    const next = at[p];
    if (typeof next !== "object")
      throw new Error(`no ${path.join(".")} in ${JSON.stringify(tree)}`);
    at = next;
  }
  return at;
};
