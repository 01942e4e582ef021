import type { FamilyStateRow, RefreshStateRow } from "../store/token-store.ts";
import {
  deriveNextRefreshToken,
  deriveSuccessor,
  hashRefreshToken,
  parseRefreshToken,
  refreshTokenMacValid,
} from "../tokens/refresh-token-format.ts";
import type { FlowDeps } from "./flow-deps.ts";
import type { StoredRefreshState } from "./refresh-decision.ts";
import { familyRefreshState, storedRefreshState } from "./stored-refresh-state.ts";

/** A presented refresh token whose shape is right and, for v2, whose MAC verified. */
export interface PresentedRefreshToken {
  token: string;
  hash: Buffer;
  /** The session and generation a v2 token carries; null for a legacy (v1) token. */
  family: { sessionId: string; generation: number } | null;
}

/**
 * Parses a presented refresh token and checks its MAC, before any database read: `problem` for a
 * malformed one (invalid_request), null for a v2 token whose MAC does not verify (answered exactly
 * like an unknown token, so a forger learns nothing).
 */
export async function presentRefreshToken(
  deps: Pick<FlowDeps, "macKeys">,
  token: string,
): Promise<PresentedRefreshToken | null | { problem: string }> {
  const parsed = parseRefreshToken(token);
  if ("problem" in parsed) return parsed;
  const hash = hashRefreshToken(token);
  if (parsed.version === 1) return { token, hash, family: null };
  const key = await deps.macKeys.find(parsed.kid);
  if (key === undefined || !refreshTokenMacValid(parsed, key.key)) return null;
  return { token, hash, family: { sessionId: parsed.sessionId, generation: parsed.generation } };
}

/** What the refresh decision and its outcomes need about a presented token. */
export interface PresentedState {
  row: RefreshStateRow | FamilyStateRow;
  state: StoredRefreshState;
  /** The generation the presented token holds: 0 for a legacy token. */
  generation: number;
  /** The successor a grace replay hands out again: the one the rotation handed out. */
  replaySuccessor(): Promise<string>;
}

/** Reads the presented token's stored state; null when it is unknown (or forged). */
export async function readPresentedState(
  deps: Pick<FlowDeps, "store" | "successorKeys" | "macKeys">,
  presented: PresentedRefreshToken,
): Promise<PresentedState | null> {
  const { token, family } = presented;
  if (family === null) {
    const row = await deps.store.readRefreshState(presented.hash);
    if (row === null) return null;
    return {
      row,
      state: storedRefreshState(row),
      generation: 0,
      async replaySuccessor() {
        const successorKey = (await deps.successorKeys.byKid(row.successor_kid)).key;
        // Rotated before the upgrade: a legacy successor. Since: the session's first v2 token.
        if (row.successor_is_legacy) return deriveSuccessor(token, successorKey);
        const macKey = await deps.macKeys.byKid(row.refresh_mac_kid);
        return deriveNextRefreshToken(
          token,
          { sessionId: row.session_id, generation: 0 },
          successorKey,
          macKey,
        );
      },
    };
  }
  const row = await deps.store.readFamilyState(family.sessionId);
  const known =
    row === null ? null : familyRefreshState(row, { generation: family.generation, hash: presented.hash });
  if (row === null || known === null) return null;
  return {
    row,
    state: known.state,
    generation: family.generation,
    async replaySuccessor() {
      const successorKey = (await deps.successorKeys.byKid(row.refresh_successor_kid)).key;
      const macKey = await deps.macKeys.byKid(row.refresh_mac_kid);
      return deriveNextRefreshToken(token, family, successorKey, macKey);
    },
  };
}
