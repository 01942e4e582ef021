// `node --import <this file>`: the process cannot load sodium-native, as on a platform it has no
// prebuilt addon for. Tests use it to run the token service on its node:crypto signer.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
