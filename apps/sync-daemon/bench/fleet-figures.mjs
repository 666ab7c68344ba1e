// Arithmetic of the fleet bench: differences of the cloud's counts, quantiles, a linear fit.

/** Requests and bytes of `caller` between two counts of the cloud, in all and to `pathPrefix`. */
export function callerDelta(before, after, caller, pathPrefix = "") {
  const paths = {};
  const total = { requests: 0, bytesIn: 0, bytesOut: 0 };
  for (const [path, now] of Object.entries(after.callers[caller]?.paths ?? {})) {
    if (!path.startsWith(pathPrefix)) continue;
    const then = before.callers[caller]?.paths[path] ?? { requests: 0, bytesIn: 0, bytesOut: 0 };
    const delta = {
      requests: now.requests - then.requests,
      bytesIn: now.bytesIn - then.bytesIn,
      bytesOut: now.bytesOut - then.bytesOut,
    };
    if (delta.requests === 0) continue;
    paths[path] = delta;
    total.requests += delta.requests;
    total.bytesIn += delta.bytesIn;
    total.bytesOut += delta.bytesOut;
  }
  return { ...total, paths };
}

/** Requests between two counts of the cloud, of every caller but `excluded`. */
export function requestsOfOthers(before, after, excluded) {
  let requests = 0;
  for (const [caller, now] of Object.entries(after.callers)) {
    if (!excluded.has(caller)) requests += now.requests - (before.callers[caller]?.requests ?? 0);
  }
  return requests;
}

/** The `p` quantile (0…1) of `values` (nearest rank); NaN when empty. */
export function quantile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export const mean = (values) => values.reduce((sum, value) => sum + value, 0) / values.length;

/** Least squares `y = intercept + slope · x`; with one point, a line through the origin. */
export function linearFit(points) {
  if (points.length === 1) {
    const [{ x, y }] = points;
    return { intercept: 0, slope: y / x };
  }
  const mx = mean(points.map((p) => p.x));
  const my = mean(points.map((p) => p.y));
  const sxx = points.reduce((sum, p) => sum + (p.x - mx) ** 2, 0);
  const sxy = points.reduce((sum, p) => sum + (p.x - mx) * (p.y - my), 0);
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope };
}

/** `value` with `digits` decimals, thousands separated. */
export const fixed = (value, digits = 1) =>
  Number.isFinite(value)
    ? value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";
