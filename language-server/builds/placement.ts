// What a build request names, and where each derivation of a plan would build.
import { ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { predictSchedule, type PredictionContext } from '../builders/predict';
import { whyNothingBuilds } from '../eval/diagnose';
import type { BuilderInfo, DerivationInfo, DocumentDerivations, LocalMachineInfo, Placement, StartBuildParams } from '../protocol';

/** The derivations a build request names: attributes of its document (evaluated as `evaluated`), and .drv paths. */
export function buildTargets(p: StartBuildParams, evaluated: DocumentDerivations | undefined): DerivationInfo[] {
  let targets: DerivationInfo[] = [];
  if (evaluated) {
    const { derivations, state } = evaluated;
    if (state !== 'ok') throw new ResponseError(ErrorCodes.InvalidRequest, `The file is not evaluated (${state}): fix its errors first.`);
    const wanted = p.attrPaths?.map((a) => a.join('\u0000'));
    targets = wanted ? derivations.filter((d) => wanted.includes(d.attrPath.join('\u0000'))) : derivations;
  }
  for (const drvPath of p.drvPaths ?? []) targets.push({ attrPath: [], drvPath, name: drvPath, system: '', requiredSystemFeatures: [], preferLocalBuild: false, outputs: [] });
  if (targets.length === 0) throw new ResponseError(ErrorCodes.InvalidParams, 'Nothing to build: no such derivation.');
  return targets;
}

/** Where Nix would build `d` with the builders and max-jobs of one build. */
export function placementOf(
  d: { system: string; requiredSystemFeatures: string[]; preferLocalBuild: boolean },
  m: { builders: readonly BuilderInfo[]; maxJobs: number | undefined },
  ctx: Omit<PredictionContext, 'local'> & { local: LocalMachineInfo | undefined },
): Placement {
  const local = ctx.local;
  if (!local) return { verdict: 'unknown', summary: 'the local Nix configuration is not known' };
  const { preview, used, notUsed } = predictSchedule(d, m.builders, { ...ctx, local }, m.maxJobs);
  const placement: Placement = { verdict: preview.verdict, summary: preview.summary };
  if (preview.chosen) placement.machine = preview.chosen.name;
  if (preview.verdict === 'none') {
    const why = whyNothingBuilds(d, m.maxJobs !== undefined ? { ...local, maxJobs: m.maxJobs } : local, used, notUsed && { machines: notUsed.builders, ignored: notUsed.because });
    if (why) placement.problem = why;
  }
  return placement;
}
