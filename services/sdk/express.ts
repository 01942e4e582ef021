/** `gatehouse/express`: middleware that verifies the bearer token and sets `req.auth`. */
export { type AuthRequest, type ExpressAuthOptions, gatehouseAuth } from "./express-auth.ts";
