import { createPrivateKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createEd25519Signer, ed25519Implementation } from "../../services/token/tokens/ed25519-signing.ts";

describe("Ed25519 signing", () => {
  // The image and this machine have sodium-native's prebuilt addon: a fallback here would hide a
  // broken install behind a 2x slower signer.
  it("runs on libsodium on this platform", () => {
    expect(ed25519Implementation).toEqual({ name: "libsodium" });
  });

  it("gives node:crypto's signature, byte for byte, for any key and message (RFC 8032 is deterministic)", () => {
    for (let i = 0; i < 50; i++) {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const signer = createEd25519Signer(privateKey);
      const message = randomBytes(i * 7);
      const signature = signer(message);
      expect(signature.equals(sign(null, message, privateKey))).toBe(true);
      expect(verify(null, message, publicKey, signature)).toBe(true);
    }
  });

  it("signs RFC 8032's test vector 2 (one-byte message)", () => {
    const seed = Buffer.from("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "hex");
    const privateKey = createPrivateKey({
      key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
      format: "der",
      type: "pkcs8",
    });
    expect(createEd25519Signer(privateKey)(Buffer.from([0x72])).toString("hex")).toBe(
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    );
  });

  it("returns a fresh buffer per signature, so an earlier one is never overwritten", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const signer = createEd25519Signer(privateKey);
    const first = signer(Buffer.from("a"));
    const copy = Buffer.from(first);
    signer(Buffer.from("b"));
    expect(first.equals(copy)).toBe(true);
  });

  it("without libsodium signs through node:crypto, with the same bytes", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const message = randomBytes(200);
    expect(
      createEd25519Signer(privateKey, null)(message).equals(createEd25519Signer(privateKey)(message)),
    ).toBe(true);
  });

  it("refuses a key that is not an Ed25519 private key", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    expect(() => createEd25519Signer(ec.privateKey)).toThrow(/not an Ed25519 private key/);
    const ed = generateKeyPairSync("ed25519");
    expect(() => createEd25519Signer(ed.publicKey)).toThrow(/not an Ed25519 private key/);
  });
});
