// Composition root of the language server. Transport (--stdio, --node-ipc, --socket=N) is chosen
// by vscode-languageserver from the command line.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { ExecaRunner } from './nix/runner';
import { NixBuildersServer } from './server';

new NixBuildersServer(createConnection(ProposedFeatures.all), new ExecaRunner()).listen();
