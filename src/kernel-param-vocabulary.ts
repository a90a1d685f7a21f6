// The kernel-parameter vocabulary: `name` or `name=value` tokens of the kernel command line, as the
// grub drop-in carries them. The config parser and the renderer ask it, so a token one accepts the
// other writes alike. Pure: strings in, strings out.

/** `name` or `name=value`; the value keeps to characters that mean nothing to the shell (the grub
 * drop-in is sourced by grub-mkconfig as root). */
const KERNEL_PARAM = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:=[A-Za-z0-9._,:=/+-]*)?$/;
/** Characters the shell that sources the grub drop-in would interpret, and how to name each. */
const SHELL_CHARS: [RegExp, string][] = [
  [/"/, "a double quote"],
  [/'/, "a single quote"],
  [/\$/, "a $"],
  [/`/, "a backtick"],
  [/\\/, "a backslash"],
  [/;/, "a ;"],
  [/\|/, "a |"],
  [/&/, "an &"],
  [/[<>]/, "a redirection (< or >)"],
  [/[()]/, "a parenthesis"],
  [/#/, "a #"],
];

/** True for a token that may go into the grub drop-in as is (the renderer re-checks every one). */
export function isSafeKernelParam(token: string): boolean {
  return KERNEL_PARAM.test(token);
}

/** How to name the first shell character of `token` ("a double quote"), or null when it has none. */
export function shellCharIn(token: string): string | null {
  return SHELL_CHARS.find(([re]) => re.test(token))?.[1] ?? null;
}

/** A parameter's name as the kernel compares it: `-` and `_` are the same character. */
export function kernelParamName(token: string): string {
  return token.split("=")[0]!.replace(/-/g, "_");
}
