import { errors, jwtVerify, SignJWT } from "jose";
import { AppError } from "../errors/index.js";

const ALGORITHM = "HS256";
const ISSUER = "chat-system";
const CLOCK_TOLERANCE_S = 5;

export type Principal = { userId: string; username: string; expiresAtMs: number };

export type TokenService = {
  /** Signs a token for the user; returns it with its expiry. */
  issue(user: { id: string; username: string }): Promise<{ token: string; expiresAtMs: number }>;
  /** Verifies signature (HS256 only), issuer, `exp` (required) and `sub`; throws UNAUTHENTICATED. */
  verify(token: string): Promise<Principal>;
};

/** Verified tokens remembered at most (a client sends the same token on every call). */
const VERIFIED_CACHE_SIZE = 10_000;

export function createTokenService(options: { secret: string; ttlSeconds: number }): TokenService {
  const key = new TextEncoder().encode(options.secret);
  // token -> principal for tokens that passed full verification; an entry is used only until the
  // token's exp, and only for the identical string, so it can never admit a token jose would refuse.
  const verified = new Map<string, Principal>();
  return {
    async issue(user) {
      const expiresAtMs = (Math.floor(Date.now() / 1000) + options.ttlSeconds) * 1000;
      const token = await new SignJWT({ username: user.username })
        .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
        .setSubject(user.id)
        .setIssuer(ISSUER)
        .setIssuedAt()
        .setExpirationTime(expiresAtMs / 1000)
        .sign(key);
      return { token, expiresAtMs };
    },
    async verify(token) {
      const cached = verified.get(token);
      if (cached && cached.expiresAtMs > Date.now()) return cached;
      if (cached) verified.delete(token);
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: [ALGORITHM],
          issuer: ISSUER,
          requiredClaims: ["exp", "sub"],
          clockTolerance: CLOCK_TOLERANCE_S,
          currentDate: new Date(Date.now()),
        });
        if (typeof payload.username !== "string" || typeof payload.exp !== "number") {
          throw new AppError("unauthenticated", "invalid token");
        }
        const principal = { userId: payload.sub!, username: payload.username, expiresAtMs: payload.exp * 1000 };
        if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
        verified.set(token, principal);
        return principal;
      } catch (error) {
        if (error instanceof AppError) throw error;
        const expired = error instanceof errors.JWTExpired;
        throw new AppError("unauthenticated", expired ? "token expired" : "invalid token", { cause: error });
      }
    },
  };
}

/** The token from an `Authorization: Bearer <token>` header value; UNAUTHENTICATED when absent. */
export function bearerToken(header: string | null | undefined): string {
  const match = /^Bearer ([A-Za-z0-9_\-.]{1,4096})$/.exec(header ?? "");
  if (!match) throw new AppError("unauthenticated", "missing or malformed bearer token");
  return match[1]!;
}
