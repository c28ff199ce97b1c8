// The Nix expression that evaluates one document and describes every derivation in it, in ONE
// `nix-instantiate --eval --strict --json` process (never one per attribute).
//
// The document's text is embedded verbatim between the two halves below, starting on line 2, so
// what is evaluated is what the editor shows (saved or not). When the editor's text is what is
// saved, the document is imported from its file instead (`--argstr docFile`): Nix 2.16 and newer
// report attribute positions (unsafeGetAttrPos) only for files, not for stdin or -E text (for an
// unsaved document the evaluator places them by reading its text: attrPositions.ts). Nothing
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

export const WALKER_PREFIX = '{ depth, isFlake, docFile ? null, searchNames ? "", flake ? null, ... }@__nbWalker: let __nbTarget = (\n';

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
  # A flake (\`flake\`: JSON from flake.ts) is evaluated as Nix's own call-flake.nix does, over its
  # flake.lock: each input from the store, or fetched from its folder when it is local (the server
  # checked that each one is one or the other: nothing is downloaded), \`self\` its source as
  # \`nix build\` copies it (a git work tree: its tracked files only), its outputs from the
  # document's text.
  flakeInfo = builtins.fromJSON flake;
  rootSrc =
    if flakeInfo.type == "git" then builtins.fetchTree { type = "git"; url = "file://" + flakeInfo.root; }
    else builtins.fetchTree { type = "path"; path = flakeInfo.root; };
  flakeDir = rootSrc.outPath + (if flakeInfo.subdir == "" then "" else "/" + flakeInfo.subdir);
  # Read from the copy, as Nix does: an untracked flake.lock is not there.
  lockSeen = builtins.pathExists (flakeDir + "/flake.lock");
  lockFile = if lockSeen then builtins.fromJSON (builtins.readFile (flakeDir + "/flake.lock")) else { nodes.root = { }; root = "root"; };
  resolveInput = spec: if builtins.isList spec then inputByPath lockFile.root spec else spec;
  inputByPath = node: path:
    if path == [ ] then node else inputByPath (resolveInput lockFile.nodes.\${node}.inputs.\${builtins.head path}) (builtins.tail path);
  # 2.8 locks \`path:./dir\` relative to the flake.
  lockedOf = node:
    let l = removeAttrs node.locked [ "dir" ];
    in if l.type == "path" && builtins.substring 0 1 l.path != "/" then l // { path = flakeInfo.root + "/" + flakeInfo.subdir + "/" + l.path; } else l;
  flakeNodes = builtins.mapAttrs (key: node:
    let
      isRoot = key == lockFile.root;
      # An input whose pinned source is in the store is that source (Nix 2.8 and 2.26 alike: not read again, even if its folder changed).
      sourceInfo =
        if isRoot then rootSrc
        else if flakeInfo.stored ? \${key} then flakeInfo.stored.\${key} // { outPath = builtins.storePath flakeInfo.stored.\${key}.outPath; }
        else builtins.fetchTree (node.info or { } // lockedOf node);
      subdir = if isRoot then flakeInfo.subdir else node.locked.dir or "";
      flake = if isRoot then __nbTarget else import (sourceInfo.outPath + (if subdir != "" then "/" + subdir else "") + "/flake.nix");
      inputs = builtins.mapAttrs (_: spec: flakeNodes.\${resolveInput spec}) (node.inputs or { });
      outputs = flake.outputs (inputs // { self = result; });
      result = outputs // sourceInfo // { inherit inputs outputs sourceInfo; };
    in if node.flake or true then result else sourceInfo) lockFile.nodes;
  # The inputs the flake declares (those only named by the outputs' arguments too, as Nix takes them), at their lines.
  declaredInputs =
    let
      written = __nbTarget.inputs or { };
      args = removeAttrs (builtins.functionArgs __nbTarget.outputs) [ "self" ];
      posIn = set: name: let p = posOf name set; in if p != null && p.inDoc then p else null;
    in builtins.mapAttrs (name: _: if written ? \${name} then posIn written name else posIn __nbTarget "outputs") (args // written);
  lockedInputs = lockFile.nodes.\${lockFile.root}.inputs or { };
  reachable = key: map (x: x.key) (builtins.genericClosure {
    startSet = [ { inherit key; } ];
    operator = x: map (spec: { key = resolveInput spec; }) (builtins.attrValues (lockFile.nodes.\${x.key}.inputs or { }));
  });
  # A local path input whose files differ from what flake.lock pinned: Nix keeps using the pinned copy.
  changedSince = key:
    let n = lockFile.nodes.\${key}; l = lockedOf n;
    in n ? locked && l.type == "path" && builtins.pathExists l.path && (builtins.fetchTree { type = "path"; inherit (l) path; }).narHash != l.narHash;
  inputProblems = builtins.concatLists (map (name:
    let
      pos = declaredInputs.\${name};
      nodes = reachable (resolveInput lockedInputs.\${name});
      missing = builtins.filter (k: builtins.elem k flakeInfo.missing) nodes;
      changed = builtins.filter changedSince nodes;
    in
      if !(lockedInputs ? \${name}) then [ { input = name; inherit pos; problem = "not-locked"; nodes = [ ]; } ]
      else if missing != [ ] then [ { input = name; inherit pos; problem = "not-fetched"; nodes = missing; } ]
      else if changed != [ ] then [ { input = name; inherit pos; problem = "changed"; nodes = changed; } ]
      else [ ]
  ) (builtins.attrNames declaredInputs));
  blocking = builtins.filter (p: p.problem != "changed") inputProblems;
  # The outputs that need builders; \`legacyPackages\` (often all of nixpkgs) only where the file
  # names the attribute. Each item carries the position of every attribute of its path that is in
  # the document (\`trail\`): flake.ts picks the one that really names it.
  flakeOutputNames = { packages = null; checks = null; devShells = null; apps = null; hydraJobs = null; legacyPackages = null; defaultPackage = null; devShell = null; };
  walkFlake = path: trail: set:
    builtins.concatLists (map (name:
      let
        here = path ++ [ name ];
        p = posOf name set;
        trailHere = trail ++ [ (if p != null && p.inDoc then p else null) ];
        level = builtins.length here;
        output = builtins.head here;
        tried = builtins.tryEval set.\${name};
        v = tried.value;
        # An app's program is a store path string: the derivations of its context build it.
        program = builtins.tryEval (if builtins.isAttrs v && v ? program && builtins.isString v.program then builtins.getContext v.program else null);
      in
        if output == "legacyPackages" && level == 3 && builtins.elemAt trailHere 2 == null then [ ]
        else if !tried.success then [ { path = here; pos = null; trail = trailHere; error = "evaluating this attribute failed (throw or assert)"; } ]
        else if output == "apps" && level == 3 then
          (if !program.success then [ { path = here; pos = null; trail = trailHere; error = "evaluating this app's program failed (throw or assert)"; } ]
          else if program.value == null then [ { path = here; pos = null; trail = trailHere; error = "not an app (an attribute set whose program is a string)"; } ]
          else [ { path = here; pos = null; trail = trailHere; app = builtins.mapAttrs (_: c: c.outputs or [ ]) program.value; } ])
        else if isDrv v then [ (describe here null v // { trail = trailHere; }) ]
        else if builtins.isAttrs v && level < depth + 2 then walkFlake here trailHere v
        else [ ]
    ) (builtins.attrNames set));
  flakeResult =
    if !builtins.pathExists (flakeDir + "/flake.nix") then { kind = "flake-untracked"; items = [ ]; }
    else if blocking != [ ] then { kind = "flake-inputs"; inputs = blocking; inherit lockSeen; items = [ ]; }
    else { kind = "attrs"; inputs = inputProblems; copy = rootSrc.outPath; items = walkFlake [ ] [ ] (builtins.intersectAttrs flakeOutputNames flakeNodes.\${lockFile.root}.outputs); };
  top =
    if isFlake then { kind = "flake"; }
    else if builtins.isFunction __nbTarget then
      (if required == [ ] then { kind = "function"; value = __nbTarget given; } else { kind = "function-with-required-arguments"; })
    else { kind = "value"; value = __nbTarget; };
in
  withSearchPaths (if top.kind == "function-with-required-arguments" then { kind = top.kind; inherit required; items = [ ]; }
  else if top.kind == "flake" then flakeResult
  else if isDrv top.value then { kind = "derivation"; items = [ (describe [ ] { line = 1; column = 1; inDoc = true; file = null; } top.value) ]; }
  else if builtins.isAttrs top.value then { kind = "attrs"; items = walk [ ] 1 null top.value; }
  else { kind = "other"; items = [ ]; })
`;

import type { FlakeFacts, FlakeInputProblem } from './flake';
import type { DerivationInfo } from '../protocol';

export interface WalkerPosition {
  /** 1-based: in the document when `inDoc`, else in `file`. */
  line: number;
  column: number;
  inDoc: boolean;
  file: string | null;
}

/** A derivation as the walker describes it: DerivationInfo's facts, at its path and Nix's position. */
export interface WalkedDerivation extends Pick<DerivationInfo, 'name' | 'drvPath' | 'system' | 'requiredSystemFeatures' | 'preferLocalBuild' | 'outputs'> {
  path: string[];
  pos: WalkerPosition | null;
}

export interface WalkedError {
  path: string[];
  pos: WalkerPosition | null;
  error: string;
}

export interface WalkerOutput {
  kind: 'attrs' | 'derivation' | 'function' | 'function-with-required-arguments' | 'flake-inputs' | 'flake-untracked' | 'other';
  required?: string[];
  /** A flake's inputs that need the user (flake.ts) and what they are checked against. */
  flake?: { inputs: FlakeInputProblem[]; facts: FlakeFacts };
  items: Array<WalkedDerivation | WalkedError>;
  /** When an attribute failed: the document's `<…>` names that no search path entry has. */
  missingSearchPaths?: string[];
}

/** The walker over the document's text, or (undefined) over its saved file. */
export function walkerExpression(documentText: string | undefined): string {
  return WALKER_PREFIX + (documentText ?? WALKER_FROM_FILE) + WALKER_SUFFIX;
}
