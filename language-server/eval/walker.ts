// The Nix expression that evaluates one document and describes every derivation in it, in ONE
// `nix-instantiate --eval --strict --json` process (never one per attribute).
//
// The document's text is embedded verbatim between the two halves below, starting on line 2, so
// what is evaluated is what the editor shows (saved or not). When the editor's text is what is
// saved, the document is imported from its file instead (`--argstr docFile`): Nix 2.16 and newer
// report attribute positions (unsafeGetAttrPos) only for files, not for stdin or -E text. Nothing
// else is ever spliced into Nix code: attribute names, file names and settings reach Nix only as
// data (`--arg depth N` is a number we format; the working folder is a process option; the user's
// function arguments are `--arg`s, Nix expressions that Nix parses as it does for nix-build).
//
// Output: { kind, required?, items: [ { path, pos, error? | drv fields } ] } where `pos` is the
// position of the deepest attribute of `path` that is defined in this document ({line, column}
// with `inDoc`, the line counted in the document), since nested sets may come from other files.

import { WALKER_ARGUMENT_PREFIX } from './arguments';

/** Lines before the document's first line. */
export const WALKER_PREFIX_LINES = 1;

export const WALKER_PREFIX = '{ depth, isFlake, docFile ? null, searchNames ? "", ... }@__nbWalker: let __nbTarget = (\n';

/** In place of the document's text: its saved file. */
export const WALKER_FROM_FILE = 'import (/. + docFile)';

export const WALKER_SUFFIX = `
); in
let
  # Positions in this document: its file, or, for text read from stdin, what Nix 2.8 reports as
  # its file (the whole text; newer Nix has no positions there): not an absolute path.
  inDoc = p: p != null && (if docFile != null then p.file == docFile else builtins.substring 0 1 p.file != "/");
  # Lines of the document: the text read from stdin starts after the walker's first lines.
  docLine = p: if docFile != null then p.line else p.line - ${WALKER_PREFIX_LINES};
  posOf = name: set:
    let p = builtins.unsafeGetAttrPos name set;
    in if p == null then null else if inDoc p then { line = docLine p; inherit (p) column; inDoc = true; file = null; } else { inherit (p) line column file; inDoc = false; };
  pick = old: new: if new != null && (new.inDoc || old == null || !old.inDoc) then new else old;
  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
  features = d:
    let f = d.drvAttrs.requiredSystemFeatures or [ ];
    in if builtins.isList f then map toString f else [ (toString f) ];
  describe = path: pos: d:
    let
      info = {
        inherit path pos;
        name = d.name or "";
        drvPath = d.drvPath;
        system = d.system or (d.drvAttrs.system or "");
        requiredSystemFeatures = features d;
        preferLocalBuild = d.drvAttrs.preferLocalBuild or false;
        outputs = d.outputs or [ "out" ];
      };
      tried = builtins.tryEval (builtins.deepSeq info info);
    in if tried.success then tried.value else { inherit path pos; error = "evaluating this derivation failed (throw or assert)"; };
  walk = path: level: pos0: set:
    builtins.concatLists (map (name:
      let
        here = path ++ [ name ];
        pos = pick pos0 (posOf name set);
        tried = builtins.tryEval set.\${name};
        v = tried.value;
      in
        if !tried.success then [ { path = here; inherit pos; error = "evaluating this attribute failed (throw or assert)"; } ]
        else if isDrv v then [ (describe here pos v) ]
        else if builtins.isAttrs v && level < depth + (if isFlake then 2 else 0) then walk here (level + 1) pos v
        else [ ]
    ) (builtins.attrNames set));
  # A function is called as nix-build calls it: with the arguments it takes of those the user gave
  # (nixBuilders.evaluation.arguments, each an --arg under a prefix), defaults for the others.
  userArgs = builtins.listToAttrs (map (n: { name = builtins.substring ${WALKER_ARGUMENT_PREFIX.length} (builtins.stringLength n) n; value = __nbWalker.\${n}; })
    (builtins.filter (n: builtins.substring 0 ${WALKER_ARGUMENT_PREFIX.length} n == ${JSON.stringify(WALKER_ARGUMENT_PREFIX)}) (builtins.attrNames __nbWalker)));
  formals = builtins.functionArgs __nbTarget;
  given = builtins.intersectAttrs formals userArgs;
  required = builtins.filter (n: !formals.\${n} && !(given ? \${n})) (builtins.attrNames formals);
  # When an attribute failed: the document's <…> names that no search path entry has (looked up
  # only then: an entry may be a URL to fetch).
  missingSearchPaths = items:
    if !(builtins.any (i: i ? error) items) then [ ]
    else builtins.filter (n: n != "" && !(builtins.tryEval (builtins.findFile builtins.nixPath n)).success) (builtins.filter builtins.isString (builtins.split " " searchNames));
  withSearchPaths = out: out // { missingSearchPaths = missingSearchPaths out.items; };
  # A flake without inputs is evaluated offline by calling its outputs with \`self\`; its
  # packages, checks and devShells are searched (per system, so depth counts from there).
  flakeInputs = builtins.attrNames (__nbTarget.inputs or { });
  flakeOutputs =
    let
      self = outputs // { outPath = ./.; inputs = { }; inherit outputs; };
      outputs = __nbTarget.outputs { inherit self; };
    in builtins.intersectAttrs { packages = null; checks = null; devShells = null; } outputs;
  top =
    if isFlake then
      (if flakeInputs == [ ] then { kind = "value"; value = flakeOutputs; } else { kind = "flake-with-inputs"; })
    else if builtins.isFunction __nbTarget then
      (if required == [ ] then { kind = "function"; value = __nbTarget given; } else { kind = "function-with-required-arguments"; })
    else { kind = "value"; value = __nbTarget; };
in
  withSearchPaths (if top.kind == "function-with-required-arguments" then { kind = top.kind; inherit required; items = [ ]; }
  else if top.kind == "flake-with-inputs" then { kind = top.kind; required = flakeInputs; items = [ ]; }
  else if isDrv top.value then { kind = "derivation"; items = [ (describe [ ] { line = 1; column = 1; inDoc = true; file = null; } top.value) ]; }
  else if builtins.isAttrs top.value then { kind = "attrs"; items = walk [ ] 1 null top.value; }
  else { kind = "other"; items = [ ]; })
`;

export interface WalkerPosition {
  /** 1-based: in the document when `inDoc`, else in `file`. */
  line: number;
  column: number;
  inDoc: boolean;
  file: string | null;
}

export interface WalkedDerivation {
  path: string[];
  pos: WalkerPosition | null;
  name: string;
  drvPath: string;
  system: string;
  requiredSystemFeatures: string[];
  preferLocalBuild: boolean;
  outputs: string[];
}

export interface WalkedError {
  path: string[];
  pos: WalkerPosition | null;
  error: string;
}

export interface WalkerOutput {
  kind: 'attrs' | 'derivation' | 'function' | 'function-with-required-arguments' | 'flake-with-inputs' | 'other';
  required?: string[];
  items: Array<WalkedDerivation | WalkedError>;
  /** When an attribute failed: the document's `<…>` names that no search path entry has. */
  missingSearchPaths?: string[];
}

/** The walker over the document's text, or (undefined) over its saved file. */
export function walkerExpression(documentText: string | undefined): string {
  return WALKER_PREFIX + (documentText ?? WALKER_FROM_FILE) + WALKER_SUFFIX;
}
