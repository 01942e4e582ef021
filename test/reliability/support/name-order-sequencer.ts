import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Runs reliability files in name order instead of vitest's duration-based order, so the log check
 * (`zz-log-check.test.ts`) always comes after every scenario whose logs it reads.
 */
export class NameOrderSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId));
  }
}
