import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { outputFor, printMessage } from "./cli-output.ts";
import { UsageError } from "./command.ts";

/**
 * How the listing commands (`audit list`, `sessions list`) page: `--limit` per page, `--page-token`
 * to continue, `--all` to follow every page; `--json` prints the RPC's response with every item
 * fetched, a table prints the items and says on stderr how to continue.
 */
export const PAGING_FLAGS = {
  limit: { type: "string" },
  "page-token": { type: "string" },
  all: { type: "boolean" },
} as const;

/** The paging lines of a listing's `--help`, for items called `noun`. */
export function pagingUsage(noun: string): string {
  return `  --limit N             ${noun} per page (default 50, at most 500)
  --page-token TOKEN    continue a listing (printed on stderr when there is more)
  --all                 follow every page`;
}

export interface PagingFlags {
  limit?: string | undefined;
  "page-token"?: string | undefined;
  all?: boolean | undefined;
}

export interface Page<Item> {
  items: Item[];
  nextPageToken: string;
}

/** The page size to ask for (0: the server's default), checked before any call is made. */
export function pageSize(flags: PagingFlags): number {
  if (flags.limit !== undefined && !/^\d{1,4}$/.test(flags.limit)) {
    throw new UsageError("--limit must be a number");
  }
  return Number(flags.limit ?? 0);
}

/** Fetches from `--page-token` on: one page, or every page with `--all`. */
export async function collectPages<Item>(
  flags: PagingFlags,
  fetchPage: (pageToken: string) => Promise<Page<Item>>,
): Promise<Page<Item>> {
  const items: Item[] = [];
  let pageToken = flags["page-token"] ?? "";
  do {
    const page = await fetchPage(pageToken);
    items.push(...page.items);
    pageToken = page.nextPageToken;
  } while (flags.all && pageToken !== "");
  return { items, nextPageToken: pageToken };
}

/** Prints a listing: the response message as JSON, or the table and, on stderr, how to go on. */
export function printListing<S extends DescMessage>(
  json: boolean | undefined,
  listing: { schema: S; response: MessageInitShape<S>; table: string; noun: string; nextPageToken: string },
): void {
  const output = outputFor(json);
  if (output.json) {
    printMessage(output, listing.schema, create(listing.schema, listing.response));
    return;
  }
  output.out(listing.table);
  if (listing.nextPageToken) {
    output.err(`more ${listing.noun}: --page-token ${listing.nextPageToken} (or --all)`);
  }
}
