// The OpenCode plugin. OpenCode calls every export of this module as a plugin function
// (`(input, options) => Promise<Hooks>`), so it exports exactly one.
import { createLiveSync } from "./live.js";

/**
 * Syncs sessions and messages to OpenSync as OpenCode emits them.
 * @param {Record<string, unknown>} [_input]  OpenCode's plugin input (client, project, directory, $…): not needed
 */
export const OpenSyncPlugin = async (_input) => {
  try {
    const sync = createLiveSync();
    return {
      event: async (input) => sync.event(input),
      dispose: () => sync.dispose(),
    };
  } catch {
    return {}; // never break OpenCode's start-up
  }
};
