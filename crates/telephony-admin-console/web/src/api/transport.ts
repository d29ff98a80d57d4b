// The service's clients: gRPC-Web to the origin that served this page, with the signed-in key
// sent as `authorization: Bearer <key>` on every call.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "../gen/telephony/admin/v1/account_service_pb";
import { ChangeService } from "../gen/telephony/admin/v1/change_service_pb";
import { EmergencyLocationService } from "../gen/telephony/admin/v1/emergency_location_service_pb";
import { PhoneNumberService } from "../gen/telephony/admin/v1/phone_number_service_pb";
import { TelephonyService } from "../gen/telephony/admin/v1/telephony_service_pb";
import { UserService } from "../gen/telephony/admin/v1/user_service_pb";
import { storedKey } from "../session";

/** Adds the stored key, unless the call names one itself (sign-in tries a key before storing it). */
const bearer: Interceptor = (next) => (req) => {
  const key = storedKey();
  if (key && !req.header.has("authorization")) {
    req.header.set("authorization", `Bearer ${key}`);
  }
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [bearer],
});

export function bearerHeader(key: string): HeadersInit {
  return { authorization: `Bearer ${key}` };
}

export const accounts: Client<typeof AccountService> = createClient(AccountService, transport);
export const users: Client<typeof UserService> = createClient(UserService, transport);
export const telephony: Client<typeof TelephonyService> = createClient(TelephonyService, transport);
export const numbers: Client<typeof PhoneNumberService> = createClient(PhoneNumberService, transport);
export const changes: Client<typeof ChangeService> = createClient(ChangeService, transport);
export const locations: Client<typeof EmergencyLocationService> = createClient(
  EmergencyLocationService,
  transport,
);
