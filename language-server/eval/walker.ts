// The Nix expression that evaluates one document and describes every derivation in it, in ONE
// `nix-instantiate --eval --strict --json` process (never one per attribute).
//
// The document's text is embedded verbatim between the two halves below, starting on line 2, so
// what is evaluated is what the editor shows (saved or not). Nothing else is ever spliced into
// Nix code: attribute names, file names and settings reach Nix only as data (`--arg depth N` is a
// number we format; the working folder is a process option).
//
// Output: { kind, required?, items: [ { path, pos, error? | drv fields } ] } where `pos` is the
// position of the deepest attribute of `path` that is defined in this document ({line, column}
// with `inDoc`), since nested sets may come from other files.

/** Lines before the document's first line. */
export const WALKER_PREFIX_LINES = 1;

export const WALKER_PREFIX = '{ depth, isFlake }: let __nbTarget = (\n';

export const WALKER_SUFFIX = `
); in
let
  # Positions in this document (read from stdin): Nix 2.8 reports its file as the whole text,
  # newer Nix as "«stdin»" or null; either way it is not an absolute path.
  inDoc = p: p != null && (p.file == null || builtins.substring 0 1 p.file != "/");
  posOf = name: set:
    let p = builtins.unsafeGetAttrPos name set;
    in if p == null then null else { inherit (p) line column; inDoc = inDoc p; file = if inDoc p then null else p.file; };
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
  required = builtins.filter (n: !(builtins.functionArgs __nbTarget).\${n}) (builtins.attrNames (builtins.functionArgs __nbTarget));
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
      (if required == [ ] then { kind = "function"; value = __nbTarget { }; } else { kind = "function-with-required-arguments"; })
    else { kind = "value"; value = __nbTarget; };
in
  if top.kind == "function-with-required-arguments" then { kind = top.kind; inherit required; items = [ ]; }
  else if top.kind == "flake-with-inputs" then { kind = top.kind; required = flakeInputs; items = [ ]; }
  else if isDrv top.value then { kind = "derivation"; items = [ (describe [ ] { line = 2; column = 1; inDoc = true; file = null; } top.value) ]; }
  else if builtins.isAttrs top.value then { kind = "attrs"; items = walk [ ] 1 null top.value; }
  else { kind = "other"; items = [ ]; }
`;

export interface WalkerPosition {
  /** 1-based, in the evaluated text (the document starts on line WALKER_PREFIX_LINES + 1). */
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
}

export function walkerExpression(documentText: string): string {
  return WALKER_PREFIX + documentText + WALKER_SUFFIX;
}
