// Where Nix would build a derivation with the builders it really uses: the scheduling preview over
// the builders the local daemon does not ignore, with the doctor's health verdicts.
import type { BuilderInfo, LocalMachineInfo } from '../protocol';
import { splitBuilders, type BuildersIgnored } from './ignoredBuilders';
import type { SchedulePreview } from '../protocol';
import { previewSchedule, type ScheduleHealth, type ScheduleInput } from './schedule';

export interface PredictionContext {
  local: LocalMachineInfo;
  health: ReadonlyMap<string, ScheduleHealth>;
  /** Set when the local nix-daemon ignores the builders we pass. */
  ignored: BuildersIgnored | undefined;
  speedArithmetic?: ScheduleInput['speedArithmetic'];
}

export function predictSchedule(
  drv: { system: string; requiredSystemFeatures: readonly string[]; preferLocalBuild: boolean },
  builders: readonly BuilderInfo[],
  ctx: PredictionContext,
  maxJobsOverride?: number,
): { preview: SchedulePreview; used: BuilderInfo[]; notUsed?: { builders: BuilderInfo[]; because: BuildersIgnored } } {
  const { used, ignored } = splitBuilders(builders, ctx.ignored);
  const notUsed = ctx.ignored && ignored.length > 0 ? { builders: ignored, because: ctx.ignored } : undefined;
  const preview = previewSchedule({
    ...drv,
    local: ctx.local,
    builders: used,
    ...(notUsed ? { notUsed } : {}),
    health: ctx.health,
    ...(maxJobsOverride !== undefined ? { maxJobsOverride } : {}),
    ...(ctx.speedArithmetic ? { speedArithmetic: ctx.speedArithmetic } : {}),
  });
  return notUsed ? { preview, used, notUsed } : { preview, used };
}
