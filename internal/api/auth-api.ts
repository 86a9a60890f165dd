import { create } from "@bufbuild/protobuf";
import {
  LoginResponseSchema,
  RegisterResponseSchema,
  type LoginRequest,
  type LoginResponse,
  type RegisterRequest,
  type RegisterResponse,
} from "../gen/chat/v1/auth_pb.js";
import { burnPasswordCheck, hashPassword, verifyPassword } from "../auth/index.js";
import { AppError } from "../errors/index.js";
import { findUserByUsername, insertUser } from "../storage/index.js";
import type { ApiDeps } from "./api-deps.js";
import { toUserProto } from "./convert.js";
import * as v from "./validate.js";

const badCredentials = () => new AppError("unauthenticated", "invalid username or password");

export function createAuthApi(deps: ApiDeps) {
  return {
    async register(req: RegisterRequest): Promise<RegisterResponse> {
      const username = v.username("username", req.username);
      const password = v.text("password", req.password, { min: 8, max: 256 });
      const displayName = v.text("display_name", req.displayName.trim() || username, { min: 1, max: 64 });
      const user = await insertUser(deps.db, { username, displayName, passwordHash: await hashPassword(password) });
      const { token, expiresAtMs } = await deps.tokens.issue(user);
      return create(RegisterResponseSchema, { user: toUserProto(user), token, expiresAtMs: BigInt(expiresAtMs) });
    },

    /** Same error and about the same time for an unknown user and a wrong password. */
    async login(req: LoginRequest): Promise<LoginResponse> {
      if (req.username === "" || req.password === "") throw new AppError("invalid_argument", "username and password are required");
      if (req.username.length > 64 || req.password.length > 256) throw badCredentials();
      const user = await findUserByUsername(deps.db, req.username.trim().toLowerCase());
      if (user === null) {
        await burnPasswordCheck(req.password);
        throw badCredentials();
      }
      if (!(await verifyPassword(req.password, user.passwordHash))) throw badCredentials();
      const { token, expiresAtMs } = await deps.tokens.issue(user);
      return create(LoginResponseSchema, { user: toUserProto(user), token, expiresAtMs: BigInt(expiresAtMs) });
    },
  };
}
