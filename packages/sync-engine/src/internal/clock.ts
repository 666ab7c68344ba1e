import { canonicalTimestamp } from "@centrovision/core";
import type { SyncPeer } from "../sync-peer.js";
import type { NodeInfo } from "../sync-types.js";

export interface MeasuredNode {
  readonly info: NodeInfo;
  /** The node's clock minus ours, assuming the reply was stamped halfway through the round trip. */
  readonly offsetMs: number;
  readonly rttMs: number;
}

/**
 * Reads a node's identity and estimates its clock offset from the same call (NTP's midpoint rule:
 * the error is at most half the round trip). Two offsets measured this way give the skew between
 * the nodes with our own clock cancelled out.
 */
export async function measureNode(peer: SyncPeer, now: () => number): Promise<MeasuredNode> {
  const sent = now();
  const info = await peer.node();
  const received = now();
  const nodeTime = Date.parse(canonicalTimestamp(info.now));
  return { info, offsetMs: nodeTime - (sent + received) / 2, rttMs: received - sent };
}
