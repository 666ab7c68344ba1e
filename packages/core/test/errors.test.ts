import { describe, expect, it } from "vitest";
import { CvError, ERROR_CODES, isCvError, isTierDown } from "../src/index.js";

describe("CvError", () => {
  it("has a stable name and code to match on across processes", () => {
    const error = new CvError("constraint", "[core] duplicate", {
      constraint: "patients_pkey",
      table: "patients",
    });
    const copy = CvError.fromJSON(JSON.parse(JSON.stringify(error)));
    expect(copy).toBeInstanceOf(CvError);
    expect(copy).toMatchObject({
      name: "CentroVisionError",
      code: "constraint",
      constraint: "patients_pkey",
    });
    expect(copy.message).toBe("[core] duplicate");
  });

  it("maps an unknown code from another process to unknown", () => {
    const copy = CvError.fromJSON({ name: "CentroVisionError", code: "exploded" as never, message: "x" });
    expect(copy.code).toBe("unknown");
  });

  it("treats only unavailable and timeout as a tier being down", () => {
    const down = ERROR_CODES.filter((code) => isTierDown(new CvError(code, "x")));
    expect(down).toEqual(["unavailable", "timeout"]);
    expect(isTierDown(new Error("ECONNREFUSED"))).toBe(false);
    expect(isCvError(new CvError("timeout", "x"), "timeout")).toBe(true);
    expect(isCvError(new CvError("timeout", "x"), "unavailable")).toBe(false);
  });
});
