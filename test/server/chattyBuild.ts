// The Nix file of a large build used by the server test, the UI test and the benchmark: `n` small
// derivations and one, depending on all of them, that prints `lines` log lines (≈ 100 bytes each
// in internal-json). Salted so that it really builds. `builder = "/bin/sh"`: no nixpkgs needed.
export interface ChattyBuildOptions {
  /** Attribute name in the file. */
  attribute: string;
  derivations: number;
  lines: number;
  salt: string;
  /** Default: builtins.currentSystem. */
  system?: string;
  /** Keep every derivation on this machine even when builders are configured. */
  preferLocalBuild?: boolean;
}

/** The file's text; the top derivation is named `chatty-<salt>`, the others `leaf-<i>`. */
export function chattyBuildFile(o: ChattyBuildOptions): string {
  const system = o.system ? `"${o.system}"` : 'builtins.currentSystem';
  const local = o.preferLocalBuild ? ' preferLocalBuild = true;' : '';
  return [
    '{',
    `  ${o.attribute} = let`,
    `    leaf = i: derivation { name = "leaf-\${toString i}"; salt = "${o.salt}"; system = ${system}; builder = "/bin/sh";${local} args = [ "-c" "echo \${toString i} > $out" ]; };`,
    '  in derivation {',
    `    name = "chatty-${o.salt}"; system = ${system}; builder = "/bin/sh";${local}`,
    `    leaves = builtins.genList leaf ${o.derivations};`,
    `    args = [ "-c" "i=0; while [ $i -lt ${o.lines} ]; do echo \\"log line $i of a chatty build\\"; i=$((i+1)); done; echo done > $out" ];`,
    '  };',
    '}',
    '',
  ].join('\n');
}
