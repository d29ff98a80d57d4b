// Live changes: one ChangeService.WatchChanges stream while signed in, from "now" (no
// after_sequence). Each event bumps the header's counter and refreshes the page on screen. When
// the stream ends it is opened again with backoff, resuming after the last event or checkpoint
// seen (with its log_id); when that resume point is refused, it starts from now again and the
// page is re-read, since events may have been missed.

import { Code, ConnectError } from "@connectrpc/connect";
import { codeName } from "./api/errors";
import { changes } from "./api/transport";
import { showLiveCount, showLiveState } from "./shell";

const MIN_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;
/** A stream that stayed up this long resets the backoff. */
const HEALTHY_MS = 10_000;

let controller: AbortController | undefined;

/** Opens the stream (closing any previous one); `onChange` runs after each event and gap. */
export function startLive(accountId: string, onChange: () => void): void {
  stopLive();
  showLiveCount(0);
  controller = new AbortController();
  void watch(controller.signal, accountId, onChange);
}

export function stopLive(): void {
  controller?.abort();
  controller = undefined;
  showLiveCount(0);
  showLiveState("stopped");
}

async function watch(signal: AbortSignal, accountId: string, onChange: () => void): Promise<void> {
  let count = 0;
  let resume: { sequence: bigint; logId: string } | undefined;
  let delay = MIN_DELAY_MS;
  while (!signal.aborted) {
    let openedAt = 0;
    let why = "the stream ended";
    const opened = (): void => {
      openedAt = Date.now();
      showLiveState("live");
    };
    showLiveState("connecting");
    try {
      const stream = changes.watchChanges(
        { accountId, afterSequence: resume?.sequence, logId: resume?.logId ?? "" },
        { signal },
      );
      for await (const item of stream) {
        // The first message is the checkpoint the server sends once it has caught up: from then
        // on every change is seen.
        if (openedAt === 0) opened();
        if (item.kind.case === "event") {
          const event = item.kind.value;
          resume = { sequence: event.sequence, logId: event.logId };
          count += 1;
          showLiveCount(count);
          onChange();
        } else if (item.kind.case === "checkpoint") {
          const cp = item.kind.value;
          if (!resume || cp.sequence > resume.sequence || cp.logId !== resume.logId) {
            resume = { sequence: cp.sequence, logId: cp.logId };
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      const e = ConnectError.from(err);
      why = `${codeName(e.code)} ${e.rawMessage}`;
      if (e.code === Code.OutOfRange || e.code === Code.FailedPrecondition) {
        // The resume point is gone (too old, or the log was restored or replaced): start from
        // now and re-read what is on screen.
        resume = undefined;
        onChange();
      }
    }
    if (signal.aborted) return;
    if (openedAt !== 0 && Date.now() - openedAt >= HEALTHY_MS) delay = MIN_DELAY_MS;
    showLiveState("retrying", `${why}; again in ${Math.round(delay / 1000)} s`);
    await sleep(delay, signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
