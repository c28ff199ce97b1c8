// Every command id, in one list without a `vscode` import, so that a unit test can check it
// against package.json; commands.ts must have a handler for each (the type says so).
export const COMMAND_IDS = [
  'nixBuilders.refreshBuilders',
  'nixBuilders.checkAllBuilders',
  'nixBuilders.checkBuilder',
  'nixBuilders.testBuild',
  'nixBuilders.previewSchedule',
  'nixBuilders.addBuilder',
  'nixBuilders.editBuilder',
  'nixBuilders.removeBuilder',
  'nixBuilders.pinHostKey',
  'nixBuilders.build',
  'nixBuilders.buildRemotely',
  'nixBuilders.buildOn',
  'nixBuilders.cancelBuild',
  'nixBuilders.showBuildLog',
  'nixBuilders.planBuild',
  'nixBuilders.pickAndBuild',
  'nixBuilders.buildExpression',
  'nixBuilders.restartServer',
  'nixBuilders.showOutput',
  'nixBuilders.openSettings',
  'nixBuilders.setEvaluationArguments',
  'nixBuilders.runServerCommand',
  'nixBuilders.checkReproducibility',
  'nixBuilders.checkReproducibilityOn',
  'nixBuilders.openCheckDifference',
  'nixBuilders.openDiffoscopeReport',
  'nixBuilders.whyDerivationsDiffer',
] as const;

export type CommandId = (typeof COMMAND_IDS)[number];
