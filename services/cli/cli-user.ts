import { userInfo } from "node:os";

/** The local user, safe to put in an audit actor (`system:cli-direct:<user>`). */
export function safeUser(): string {
  try {
    return userInfo()
      .username.replace(/[^\w.-]/g, "_")
      .slice(0, 64);
  } catch {
    return "unknown";
  }
}
