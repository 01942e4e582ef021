import {
  ListSessionsResponseSchema,
  RevokeResponseSchema,
  TokenService,
} from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import type { Session } from "../gen/proto/gatehouse/v1/types_pb.ts";
import { outputFor, printMessage, table, when } from "./cli-output.ts";
import { EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { commandGroup, positionalArgs, type Subcommand } from "./command-group.ts";
import { collectPages, PAGING_FLAGS, pageSize, pagingUsage, printListing } from "./paged-listing.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE, withConnection } from "./rpc-connection.ts";

const COMMON = { ...CONNECTION_FLAGS, json: { type: "boolean" } } as const;

export function sessionsTable(sessions: readonly Session[]): string {
  return table(
    ["SESSION ID", "SUBJECT", "CLIENT", "CREATED", "LAST USED", "EXPIRES", "SV", "DEVICE"],
    sessions.map((s) => [
      s.sessionId,
      s.subject,
      s.clientId,
      when(s.createdAt),
      when(s.lastUsedAt),
      when(s.idleExpiresAt),
      String(s.version),
      s.device?.name || s.device?.userAgent || "",
    ]),
  );
}

const list: Subcommand = {
  name: "list",
  summary: "List a subject's live sessions, most recently used first",
  usage: `Usage: gatehouse sessions list --subject SUBJECT [--limit N] [--all] [--json]

  --subject SUBJECT     the end user whose sessions to list (required)
${pagingUsage("sessions")}
  --json                print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      ...PAGING_FLAGS,
      subject: { type: "string" },
    });
    positionalArgs(positionals, []);
    if (!values.subject) throw new UsageError("--subject is required");
    const subject = values.subject;
    const size = pageSize(values);
    const { items: sessions, nextPageToken } = await withConnection(TokenService, values, (c) =>
      collectPages(values, async (pageToken) => {
        const page = await c.call("listSessions", { subject, pageSize: size, pageToken });
        return { items: page.sessions, nextPageToken: page.nextPageToken };
      }),
    );
    printListing(values.json, {
      schema: ListSessionsResponseSchema,
      response: { sessions, nextPageToken },
      table: sessionsTable(sessions),
      noun: "sessions",
      nextPageToken,
    });
    return EXIT_OK;
  },
};

const TARGETS = ["session-id", "subject", "refresh-token", "access-token"] as const;
const TARGET_CASE = {
  "session-id": "sessionId",
  subject: "subject",
  "refresh-token": "refreshToken",
  "access-token": "accessToken",
} as const;

const revoke: Subcommand = {
  name: "revoke",
  summary: "Revoke a session, every session of a subject, or one token",
  usage: `Usage: gatehouse sessions revoke (--session-id ID | --subject SUBJECT | --refresh-token T | --access-token T)
                                [--access-only] [--reason TEXT] [--json]

Revokes what is named, and returns once the sidecars have been told (or says it is pending).
Revoking what is already revoked changes nothing.

  --session-id ID       one session (all its tokens)
  --subject SUBJECT     every session of an end user, and every token issued to them so far
  --refresh-token T     the session of a refresh token
  --access-token T      one access token (and its session)
  --access-only         revoke the access tokens only; the sessions live on and refresh normally
  --reason TEXT         why, for the audit log
  --json                print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      "session-id": { type: "string" },
      subject: { type: "string" },
      "refresh-token": { type: "string" },
      "access-token": { type: "string" },
      "access-only": { type: "boolean" },
      reason: { type: "string" },
    });
    positionalArgs(positionals, []);
    const given = TARGETS.filter((t) => values[t] !== undefined);
    if (given.length !== 1) {
      throw new UsageError("give exactly one of --session-id, --subject, --refresh-token, --access-token");
    }
    const flag = given[0]!;
    const res = await withConnection(TokenService, values, (c) =>
      c.call("revoke", {
        target: { case: TARGET_CASE[flag], value: values[flag]! },
        accessOnly: values["access-only"] === true,
        reason: values.reason ?? "",
      }),
    );
    const output = outputFor(values.json);
    if (output.json) printMessage(output, RevokeResponseSchema, res);
    else {
      output.out(
        `revoked ${res.sessionsRevoked} session(s), ${res.eventIds.length} revocation event(s); ` +
          (res.propagated ? "sidecars have been told" : "publishing to the sidecars is pending"),
      );
    }
    return EXIT_OK;
  },
};

export const sessionsCommand = commandGroup("sessions", "List and revoke end users' sessions", [
  list,
  revoke,
]);
