-- Every Refresh updates its session's row. Leaving 15 % of each page free lets that update stay on the
-- page as a HOT update (no new index entries, and the old version is pruned in place), also for rows
-- written tightly packed, by COPY or a bulk import: at the default 100, the first update of a row on a
-- full page moves it to another page and adds an entry to every index of the table.
-- Prisma's schema language has no storage parameters, so this lives here only (bench/soak.ts measures it).
ALTER TABLE "sessions" SET (fillfactor = 85);
