// What a failed call says: its gRPC code by name, its message and the google.rpc details the
// server attaches (ErrorInfo, BadRequest, PreconditionFailure, ResourceInfo).

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  ResourceInfoSchema,
} from "../gen/google/rpc/error_details_pb";

export interface Failure {
  /** The gRPC code's name, e.g. "FAILED_PRECONDITION". */
  code: string;
  message: string;
  /** ErrorInfo.reason, "" when the error has none. */
  reason: string;
  /** BadRequest field violations as "field: description". */
  violations: string[];
  /** PreconditionFailure violations as "TYPE subject: description". */
  preconditions: string[];
  /** ResourceInfo as "type name". */
  resources: string[];
}

const CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

export function codeName(code: Code): string {
  return CODE_NAMES[code] ?? "UNKNOWN";
}

export function describe(err: unknown): Failure {
  const e = ConnectError.from(err);
  return {
    code: codeName(e.code),
    message: e.rawMessage,
    reason: e
      .findDetails(ErrorInfoSchema)
      .map((info) => info.reason)
      .filter(Boolean)
      .join(", "),
    violations: e
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => `${v.field}: ${v.description}`)),
    preconditions: e
      .findDetails(PreconditionFailureSchema)
      .flatMap((pf) => pf.violations.map((v) => `${v.type} ${v.subject}: ${v.description}`)),
    resources: e.findDetails(ResourceInfoSchema).map((r) => `${r.resourceType} ${r.resourceName}`.trim()),
  };
}

/** A call this console abandoned itself (the page was left, or the user signed out). */
export function isCancelled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

export function hasCode(err: unknown, code: Code): boolean {
  return ConnectError.from(err).code === code;
}
